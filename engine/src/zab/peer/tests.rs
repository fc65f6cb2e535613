use super::*;

mod sim;

fn seeds(default: u64) -> std::ops::Range<u64> {
    if let Ok(s) = std::env::var("ZAB_SEED") {
        let s: u64 = s.parse().expect("ZAB_SEED");
        return s..s + 1;
    }
    let n = std::env::var("ZAB_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    0..n
}

#[test]
fn zab_sim_three_voters() {
    let mut total = sim::Stats::default();
    for seed in seeds(40) {
        let st = sim::Sim::new(seed, 3, 0).simulate(20_000);
        total.established += st.established;
        total.committed += st.committed;
        total.answered += st.answered;
        total.unknown += st.unknown;
        total.snaps += st.snaps;
        total.truncs += st.truncs;
        total.crashes += st.crashes;
    }
    eprintln!("{total:?}");
}

#[test]
fn zab_sim_five_voters_and_observers() {
    let mut total = sim::Stats::default();
    for seed in seeds(20) {
        // Seeds differ from the three-voter test's so the two runs do not share schedules.
        let observers = (seed % 3) as usize;
        let st = sim::Sim::new(seed ^ 0x5eed_0005, 5, observers).simulate(20_000);
        total.established += st.established;
        total.committed += st.committed;
        total.snaps += st.snaps;
        total.truncs += st.truncs;
        total.crashes += st.crashes;
    }
    eprintln!("{total:?}");
}
