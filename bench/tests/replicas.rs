//! How the PostgreSQL connections are shared out between the replicas and the
//! floor.

use appeals_bench::replicas::{Budget, DEDICATED_PER_SERVER, HEADROOM, Limits};

const HERE: Limits = Limits { max_connections: 100, reserved: 3, in_use: 0 };

fn fits(budget: &Budget, limits: Limits) -> bool {
    let used = budget.servers as u32 * (budget.pool_per_server + DEDICATED_PER_SERVER) + budget.floor_pool;
    used + HEADROOM + limits.reserved + limits.in_use <= limits.max_connections
}

#[test]
fn one_server_keeps_the_pool_it_always_had() {
    let budget = Budget::plan(HERE, 1, None, true).unwrap();
    assert_eq!((budget.pool_per_server, budget.floor_pool), (16, 16));
    assert!(fits(&budget, HERE));
}

#[test]
fn three_replicas_get_what_fits_up_to_twenty_four_each() {
    let mixed_only = Budget::plan(HERE, 3, None, false).unwrap();
    assert_eq!((mixed_only.pool_per_server, mixed_only.floor_pool), (24, 2));
    assert!(fits(&mixed_only, HERE));
    let with_floor = Budget::plan(HERE, 3, None, true).unwrap();
    assert!(with_floor.pool_per_server < 24 && fits(&with_floor, HERE), "{with_floor:?}");
    let busy = Limits { in_use: 30, ..HERE };
    let shared = Budget::plan(busy, 3, None, false).unwrap();
    assert!(fits(&shared, busy), "{shared:?}");
}

#[test]
fn an_asked_pool_that_does_not_fit_is_refused_with_what_would() {
    let error = Budget::plan(HERE, 3, Some(40), false).unwrap_err().to_string();
    assert!(error.contains("max_connections = 100") && error.contains("per server fits"), "{error}");
    assert!(Budget::plan(HERE, 8, None, true).is_ok(), "eight small pools still fit");
    assert!(Budget::plan(Limits { in_use: 90, ..HERE }, 3, None, false).is_err());
}
