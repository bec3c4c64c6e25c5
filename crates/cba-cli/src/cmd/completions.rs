//! `cba completions SHELL`.

use clap::CommandFactory as _;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cba completions bash > ~/.local/share/bash-completion/completions/cba\n  cba completions zsh > \"${fpath[1]}/_cba\"\n  cba completions fish > ~/.config/fish/completions/cba.fish\n  cba completions powershell >> $PROFILE"
)]
pub struct Args {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cmd = crate::Cli::command();
    // Into memory first: clap_complete panics when a write fails, and `| head` closes stdout.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "cba", &mut script);
    crate::output::write_stdout(&String::from_utf8_lossy(&script))
}
