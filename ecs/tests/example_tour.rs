//! The README's example (examples/ecs_tour.rs) runs to completion: its own
//! assertion checks the conflict resolved by retry left the right balance.

#[allow(dead_code)]
#[path = "../examples/ecs_tour.rs"]
mod tour;

#[test]
fn the_tour_runs() {
    let dir = tempfile::tempdir().unwrap();
    tour::run(dir.path()).unwrap();
}
