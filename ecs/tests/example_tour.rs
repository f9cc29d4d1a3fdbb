//! The README's example (examples/ecs_tour.rs) runs to completion: once as
//! the binary a user starts with `cargo run -p jkv-ecs --example ecs_tour
//! DIR` (cargo builds examples with the tests), and once in-process. Its own
//! assertion checks that the conflict resolved by retry left the right
//! balance.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

#[allow(dead_code)]
#[path = "../examples/ecs_tour.rs"]
mod tour;

#[test]
fn the_tour_runs() {
    let dir = tempfile::tempdir().unwrap();
    tour::run(dir.path()).unwrap();
}

/// target/<profile>/examples/ecs_tour, next to this test's deps directory.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    profile_dir
        .join("examples")
        .join(format!("ecs_tour{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn the_tour_binary_prints_its_steps() {
    let bin = example_binary();
    assert!(
        bin.exists(),
        "{} is missing: cargo test builds examples with the tests",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(&bin)
        .arg(dir.path().join("db"))
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("inserted players"), "{stdout}");
    assert!(
        stdout.contains("entered (bow)"),
        "the range subscription saw the bow enter: {stdout}"
    );
    assert!(stdout.contains("alice has 120 gold"), "{stdout}");
}
