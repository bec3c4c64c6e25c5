//! cba-lifecycle against cba-sim: every operation in process, no binary. Waits run on a clock that moves
//! the simulator's time instead of sleeping, so replication waits take no wall time.

mod exchange_roles;
mod fleet;
mod rotate;
mod setup;
mod status;
mod support;
mod teardown;
