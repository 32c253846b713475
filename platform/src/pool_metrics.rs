//! The services' PostgreSQL connection pool as Prometheus gauges, read from the pool at scrape
//! time (sqlx keeps the counts itself, so nothing is updated on the request path):
//!
//! - `db_pool_connections{state="in_use"|"idle"}`: open connections by state;
//! - `db_pool_max_connections`: the pool's ceiling (`DB_MAX_CONNECTIONS`).
//!
//! `in_use / max` near 1 means requests queue for a connection and, after
//! `DB_ACQUIRE_TIMEOUT_SECS`, get 503 (`http_unavailable_responses_total{cause="database"}`).

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, IntGaugeVec, Opts};
use sqlx::PgPool;

/// A [`Collector`] sampling a [`PgPool`]; register it once per pool.
pub struct PoolCollector {
    pool: PgPool,
    connections: IntGaugeVec,
    max: IntGauge,
}

impl PoolCollector {
    pub fn new(pool: PgPool) -> prometheus::Result<Self> {
        let connections = IntGaugeVec::new(
            Opts::new("db_pool_connections", "Open database connections of this process by state (in_use, idle)"),
            &["state"],
        )?;
        let max = IntGauge::new("db_pool_max_connections", "Most connections the pool opens (DB_MAX_CONNECTIONS)")?;
        Ok(Self { pool, connections, max })
    }
}

impl Collector for PoolCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.connections.desc().into_iter().chain(self.max.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // Two separate atomic reads: a connection may change state in between, hence saturating.
        let size = i64::from(self.pool.size());
        let idle = i64::try_from(self.pool.num_idle()).unwrap_or(size);
        self.connections.with_label_values(&["idle"]).set(idle.min(size));
        self.connections.with_label_values(&["in_use"]).set(size.saturating_sub(idle).max(0));
        self.max.set(i64::from(self.pool.options().get_max_connections()));
        let mut families = self.connections.collect();
        families.extend(self.max.collect());
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::postgres::PgPoolOptions;

    #[tokio::test]
    async fn an_unused_lazy_pool_reports_its_ceiling_and_no_connections() {
        let pool = PgPoolOptions::new().max_connections(7).connect_lazy("postgres://u@127.0.0.1:1/db").unwrap();
        let registry = prometheus::Registry::new();
        registry.register(Box::new(PoolCollector::new(pool).unwrap())).unwrap();
        let text = crate::metrics::render(&registry);
        assert!(text.contains("db_pool_max_connections 7"), "{text}");
        assert!(text.contains(r#"db_pool_connections{state="in_use"} 0"#), "{text}");
        assert!(text.contains(r#"db_pool_connections{state="idle"} 0"#), "{text}");
    }
}
