//! The ECS benchmarks through the `jkv-bench` binary, as a user types them:
//! each prints db_bench's result line, the transfer checks its total, and
//! flags that make no sense are refused.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn bench(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jkv-bench"))
        .args(args)
        .output()
        .expect("jkv-bench runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_ecs_benchmark_prints_its_result_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db_flag = format!("--db={}", db.display());
    let (ok, out, err) = bench(&[
        "--benchmarks=ecs_get,ecs_update,ecs_range,ecs_upsert,ecs_transfer",
        "--num=2000",
        "--ecs_rows=3000",
        "--ecs_accounts=500",
        "--zipf_alpha=1.5",
        "--threads=2",
        &db_flag,
    ]);
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    for name in [
        "ecs_get",
        "ecs_update",
        "ecs_range",
        "ecs_upsert",
        "ecs_transfer",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in\n{out}"));
        assert!(
            line.contains("ops/sec") && line.contains("4000 operations"),
            "{line}"
        );
    }
    let get = out.lines().find(|l| l.starts_with("ecs_get")).unwrap();
    assert!(get.contains("(4000 of 4000 found)"), "{get}");
    let transfer = out.lines().find(|l| l.starts_with("ecs_transfer")).unwrap();
    assert!(
        transfer.contains("total balance conserved") && transfer.contains("retries per commit"),
        "{transfer}"
    );
}

#[test]
fn synced_updates_and_compacted_tables_run() {
    let dir = tempfile::tempdir().unwrap();
    let db_flag = format!("--db={}", dir.path().join("db").display());
    let (ok, out, err) = bench(&[
        "--benchmarks=ecs_update,ecs_get",
        "--num=300",
        "--ecs_rows=500",
        "--sync=1",
        "--ecs_compact=1",
        &db_flag,
    ]);
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("ecs_update") && l.contains("300 operations")),
        "{out}"
    );
}

#[test]
fn bad_ecs_flags_are_refused() {
    let (ok, _, err) = bench(&["--benchmarks=ecs_get", "--zipf_alpha=lots"]);
    assert!(!ok);
    assert!(err.contains("zipf_alpha"), "{err}");
    let (ok, _, err) = bench(&["--benchmarks=ecs_nothing"]);
    assert!(!ok);
    assert!(err.contains("ecs_nothing"), "{err}");
}
