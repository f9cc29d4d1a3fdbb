//! A tour of jkv-ecs: two components, rows inserted in one commit, a range
//! query on an indexed column, a range subscription that sees a row enter,
//! and a conflict between two transactions resolved by retry.
//!
//! Run: `cargo run -p jkv-ecs --example ecs_tour [DIR]` (a temporary
//! directory by default).

use std::time::Duration;

use jkv_ecs::{Component, DType, Ecs, Error, Property, Range, SubscriptionBroker};

fn main() -> Result<(), Error> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("jkv-ecs-tour-{}", std::process::id()))
        });
    run(&dir)
}

/// The tour on a database in `dir` (ecs/tests/example_tour.rs runs it too).
pub fn run(dir: &std::path::Path) -> Result<(), Error> {
    let ecs = Ecs::open(dir, jkv::Options::default())?;

    // Two components: players with a unique name, items owned by players.
    let player = Component::builder("tour", "Player")
        .property(Property::new("name", DType::Unicode(16)).unique())
        .property(Property::new("gold", DType::I64).default(100))
        .build()?;
    let item = Component::builder("tour", "Item")
        .property(Property::new("owner", DType::I64).index())
        .property(Property::new("kind", DType::Unicode(12)))
        .property(Property::new("power", DType::F32).index())
        .build()?;
    let players = ecs.table(&player, "world1", 1)?;
    let items = ecs.table(&item, "world1", 1)?;

    // One commit: two players and their items.
    let (alice, bob) = ecs.retry(5, |txn| {
        let mut a = ecs.new_row(&player)?;
        a.set("name", "alice")?;
        let mut b = ecs.new_row(&player)?;
        b.set("name", "bob")?;
        let (a, b) = (txn.insert(&players, a)?, txn.insert(&players, b)?);
        for (owner, kind, power) in [(a, "sword", 7.5f32), (a, "shield", 3.0), (b, "bow", 5.25)] {
            let mut it = ecs.new_row(&item)?;
            it.set("owner", owner)?
                .set("kind", kind)?
                .set("power", power)?;
            txn.insert(&items, it)?;
        }
        Ok((a, b))
    })?;
    println!("inserted players alice={alice} bob={bob} and 3 items");

    // A range on an indexed column: items with power in [4, 10], strongest first.
    let strong = ecs.range(&items, &Range::between("power", 4.0, 10.0).desc())?;
    for it in &strong {
        println!(
            "  power {:>5} {:<8} owner {}",
            it.get_f64("power")?,
            it.get_str("kind")?,
            it.get_i64("owner")?
        );
    }

    // Subscribe to alice's items, then give her bob's bow.
    let mut broker = SubscriptionBroker::new(&ecs)?;
    let (sub, rows) = broker.subscribe_range(&items, &Range::eq("owner", alice), true)?;
    let sub = sub.expect("force gives a subscription id");
    println!("subscribed {sub} ({} rows)", rows.len());
    ecs.retry(5, |txn| {
        let mut bow = txn.get_by(&items, "owner", bob)?.expect("bob owns the bow");
        bow.set("owner", alice)?;
        txn.update(&items, bow)
    })?;
    for (sub_id, changes) in broker.get_updates(Duration::from_secs(2))? {
        for (id, row) in changes {
            match row {
                Some(r) => println!("  {sub_id}: item {id} entered ({})", r.get_str("kind")?),
                None => println!("  {sub_id}: item {id} left"),
            }
        }
    }

    // A conflict: two transactions read alice; the first commit wins, the
    // second loses the race, and `retry` runs it again on fresh data.
    let mut first = ecs.begin();
    let mut a = first.get(&players, alice)?.expect("alice exists");
    a.set("gold", a.get_i64("gold")? + 50)?;
    first.update(&players, a)?;
    let mut attempt = 0;
    ecs.retry(5, |txn| {
        attempt += 1;
        let mut a = txn.get(&players, alice)?.expect("alice exists");
        if attempt == 1 {
            // The other transaction commits between our read and our commit.
            std::mem::replace(&mut first, ecs.begin()).commit()?;
        }
        a.set("gold", a.get_i64("gold")? - 30)?;
        txn.update(&players, a)
    })?;
    let a = ecs.get(&players, alice)?.expect("alice exists");
    println!(
        "alice has {} gold after +50 and -30 (the -30 took {attempt} attempts), version {}",
        a.get_i64("gold")?,
        a.version()
    );
    assert_eq!(a.get_i64("gold")?, 120);
    ecs.close()?;
    Ok(())
}
