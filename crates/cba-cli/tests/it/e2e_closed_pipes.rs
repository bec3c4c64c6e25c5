//! A closed stdout or stderr (`cba demo 2>&1 | head -3`) is a quiet, normal exit, never a panic (101), and
//! the demo's temporary folder goes with it.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::Stdio;

use super::cba;

#[test]
fn e2e_closed_pipes_end_the_demo_quietly_and_remove_its_folder() {
    let mut child = cba()
        .args(["demo", "--replication-delay-ms", "0", "--throttle-every", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let folder = PathBuf::from(first.trim_end().rsplit_once("files in ").expect(&first).1);
    assert!(folder.is_dir(), "{first}");
    for _ in 0..2 {
        stderr.read_line(&mut String::new()).unwrap();
    }
    // `head -3` is done: both pipes close while the demo still has steps to print.
    drop(stderr);
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a closed pipe is a normal exit");
    assert!(!folder.exists(), "{} is left behind", folder.display());
}

#[test]
fn e2e_closed_pipes_from_the_start_are_a_normal_exit() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    let cases: [&[&str]; 4] = [
        &["cert", "new", "--name", "closed", "--no-password", "--out-dir", out_dir],
        &["cert", "show", "closed.cer", "--output", "json"],
        &["completions", "bash"],
        &["--help"],
    ];
    for args in cases {
        let mut child =
            cba().args(args).current_dir(dir.path()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        drop(child.stderr.take());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "cba {}", args.join(" "));
    }
    assert!(dir.path().join("closed.pfx").exists(), "the work is done even though nobody reads the messages");
}
