use governor::clock::FakeRelativeClock;

use super::*;

fn nz(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).unwrap()
}

fn settings(rate: u32, burst: u32) -> RateLimitSettings {
    let section = RateLimitSection { fleet_rate_per_sec: rate, burst, ..RateLimitSection::default() };
    RateLimitSettings::try_from(&section).unwrap()
}

fn limits(rate: u32, burst: u32) -> (SubjectLimits<FakeRelativeClock>, FakeRelativeClock, Registry) {
    let registry = Registry::new();
    let metrics = RateLimitMetrics::register(&registry).unwrap();
    let clock = FakeRelativeClock::default();
    (SubjectLimits::with_clock(&settings(rate, burst), metrics, clock.clone()), clock, registry)
}

#[test]
fn each_gateway_gets_its_share_of_the_fleet_rate() {
    // N = 1: the fleet's values.
    let q = gateway_share(nz(50), nz(100), nz(1));
    assert_eq!((q.replenish_interval(), q.burst_size()), (Duration::from_millis(20), nz(100)));
    // N = 3: one request every 3/50 s per gateway (3 × 50/3 = 50 per second over the fleet);
    // the burst is rounded up, ceil(100 / 3) = 34.
    let q = gateway_share(nz(50), nz(100), nz(3));
    assert_eq!((q.replenish_interval(), q.burst_size()), (Duration::from_millis(60), nz(34)));
    // More gateways than the burst: at least one request each.
    let q = gateway_share(nz(50), nz(100), nz(200));
    assert_eq!((q.replenish_interval(), q.burst_size()), (Duration::from_secs(4), nz(1)));
    // A period that is not a whole number of nanoseconds is rounded up (never above the rate).
    let q = gateway_share(nz(3), nz(1), nz(1));
    assert_eq!(q.replenish_interval(), Duration::from_nanos(333_333_334));
}

#[test]
fn the_policy_states_the_fleet_burst_and_its_refill_window() {
    assert_eq!(policy_header(nz(50), nz(100)), r#""default";q=100;w=2"#);
    assert_eq!(policy_header(nz(30), nz(100)), r#""default";q=100;w=4"#);
    assert_eq!(policy_header(nz(1000), nz(10)), r#""default";q=10;w=1"#);
}

#[test]
fn retry_after_is_whole_seconds_rounded_up() {
    for (wait, secs) in [(0, 1), (200, 1), (1000, 1), (1001, 2), (2500, 3)] {
        assert_eq!(Limited { wait: Duration::from_millis(wait) }.retry_after_secs(), secs, "{wait} ms");
    }
    let headers = Limited { wait: Duration::from_millis(1500) }.headers(r#""default";q=4;w=2"#);
    assert_eq!(
        headers.map(|(n, v)| format!("{n}: {v}")),
        ["retry-after: 2", r#"ratelimit-policy: "default";q=4;w=2"#, r#"ratelimit: "default";r=0;t=2"#]
    );
}

#[test]
fn a_flood_from_one_subject_is_limited_while_others_are_served() {
    let (limits, clock, registry) = limits(2, 4);
    let flooder = Subject::User(1);
    for i in 0..4 {
        assert_eq!(limits.check(flooder), Ok(()), "request {i} is within the burst");
    }
    let limited = limits.check(flooder).unwrap_err();
    assert_eq!(limited.wait, Duration::from_millis(500), "one request per 1/2 s");
    assert_eq!(limits.check(Subject::User(2)), Ok(()));
    // An API key is its own subject, whoever the user is.
    assert_eq!(limits.check(Subject::ApiKey([1; 16])), Ok(()));
    clock.advance(Duration::from_millis(500));
    assert_eq!(limits.check(flooder), Ok(()));
    assert!(limits.check(flooder).is_err());
    let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).unwrap();
    assert!(text.contains("gateway_rate_limited_total 2"), "{text}");
}

#[test]
fn the_subject_is_the_api_key_when_the_token_names_one() {
    let mut claims = platform::keyring::Claims::new(7, "alice", "a@example.com", 0, 60);
    let login = Identity::from_claims(&claims, None).unwrap();
    assert_eq!(Subject::of(&login), Subject::User(7));
    claims.client_id = Some("key-1".into());
    let key = Identity::from_claims(&claims, None).unwrap();
    assert_eq!(Subject::of(&key), Subject::ApiKey(crate::decision::jti_key("key-1")));
}

#[test]
fn a_new_peer_count_divides_the_rate_again() {
    let (limits, clock, registry) = limits(10, 10);
    limits.set_peers(nz(5));
    assert_eq!(limits.peers(), nz(5));
    let s = Subject::User(1);
    assert!(limits.check(s).is_ok() && limits.check(s).is_ok(), "burst ceil(10 / 5) = 2");
    assert_eq!(limits.check(s).unwrap_err().wait, Duration::from_millis(500), "10 / 5 = 2 per second");
    clock.advance(Duration::from_millis(500));
    assert!(limits.check(s).is_ok());
    let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).unwrap();
    assert!(text.contains("gateway_rate_limit_peers 5"), "{text}");
}

/// Where no DNS name counts the tasks (the run command's local stack), a fixed N splits the
/// fleet rate from the first request.
#[test]
fn a_fixed_peer_count_splits_the_rate_from_the_start() {
    let section = RateLimitSection { fleet_rate_per_sec: 10, burst: 10, peers: 2, ..RateLimitSection::default() };
    let settings = RateLimitSettings::try_from(&section).unwrap();
    let registry = Registry::new();
    let limits = SubjectLimits::with_clock(
        &settings,
        RateLimitMetrics::register(&registry).unwrap(),
        FakeRelativeClock::default(),
    );
    assert_eq!(limits.peers(), nz(2));
    let s = Subject::User(1);
    let admitted = (0..20).filter(|_| limits.check(s).is_ok()).count();
    assert_eq!(admitted, 5, "burst ceil(10 / 2)");
    assert!(
        prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap()
            .contains("gateway_rate_limit_peers 2")
    );
}

#[tokio::test]
async fn peers_are_counted_from_dns_and_a_failed_lookup_keeps_n() {
    let (limits, _, _) = limits(10, 10);
    let localhost = count_addresses("localhost").await.unwrap();
    assert!(localhost >= 1);
    assert!(refresh_peers(&limits, "localhost").await);
    assert_eq!(limits.peers().get() as usize, localhost);
    limits.set_peers(nz(3));
    assert!(!refresh_peers(&limits, "no-such-host.invalid").await);
    assert_eq!(limits.peers(), nz(3));
}

#[test]
fn bad_values_name_the_key() {
    type Edit = fn(&mut RateLimitSection);
    let cases: [(Edit, &str); 8] = [
        (|s| s.fleet_rate_per_sec = 0, "[rate_limit] fleet_rate_per_sec"),
        (|s| s.burst = 2_000_000, "[rate_limit] burst"),
        (|s| s.peers_refresh_secs = 0, "[rate_limit] peers_refresh_secs"),
        (|s| s.evict_interval_secs = 7200, "[rate_limit] evict_interval_secs"),
        (|s| s.peers_dns_name = "http://task-service.local".into(), "[rate_limit] peers_dns_name"),
        (|s| s.peers_dns_name = "task-service..local".into(), "[rate_limit] peers_dns_name"),
        (|s| s.peers = 2_000_000, "[rate_limit] peers"),
        (
            |s| {
                s.peers = 2;
                s.peers_dns_name = "task-service.local".into();
            },
            "[rate_limit] peers",
        ),
    ];
    for (edit, key) in cases {
        let mut section = RateLimitSection::default();
        edit(&mut section);
        assert_eq!(RateLimitSettings::try_from(&section).unwrap_err().key, key);
    }
    let section = RateLimitSection {
        peers_dns_name: " Task-Service.task-management.local ".into(),
        ..RateLimitSection::default()
    };
    let s = RateLimitSettings::try_from(&section).unwrap();
    assert_eq!(s.peers_dns_name.as_deref(), Some("task-service.task-management.local"));
    let d = RateLimitSettings::try_from(&RateLimitSection::default()).unwrap();
    assert!(d.enabled && d.peers_dns_name.is_none());
    assert_eq!((d.fleet_rate_per_sec, d.burst), (nz(50), nz(100)));
}

/// Resident set size of this process, bytes (`/proc/self/statm`, second field, in pages).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * procfs::page_size()
}

/// A million distinct subjects, then eviction once their state is back to a full burst: the
/// store's size before and after, and the process's resident memory (printed; docs/gateway.md
/// quotes the figures).
#[test]
fn a_million_subjects_are_evicted_once_idle() {
    const SUBJECTS: i64 = 1_000_000;
    let (limits, clock, _) = limits(50, 100);
    let before = rss_bytes();
    for user in 0..SUBJECTS {
        assert!(limits.check(Subject::User(user)).is_ok());
    }
    let filled = rss_bytes();
    assert_eq!(limits.len(), SUBJECTS as usize);
    // Not yet idle long enough: nobody is evicted.
    assert_eq!(limits.evict(), SUBJECTS as usize);
    // governor forgets a subject once its theoretical arrival time lies one emission interval
    // (1/50 s) in the past: after (burst + 1) / rate = 2.02 s for one that used its whole burst.
    clock.advance(Duration::from_millis(2020));
    assert_eq!(limits.evict(), 0);
    let evicted = rss_bytes();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "rate-limit store: {SUBJECTS} subjects: RSS +{:.1} MiB ({:.0} bytes per subject); after eviction and \
         shrink_to_fit: {} subjects, RSS +{:.1} MiB over the start",
        mib(filled.saturating_sub(before)),
        filled.saturating_sub(before) as f64 / SUBJECTS as f64,
        limits.len(),
        mib(evicted.saturating_sub(before)),
    );
    assert!(filled > before, "a million entries take memory");
    assert!(evicted < filled, "eviction gives memory back: {evicted} >= {filled}");
}
