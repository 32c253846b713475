//! One figure from a process's Prometheus endpoint (the text exposition format).

use std::net::SocketAddr;

/// The sum of the samples of `family` whose line contains `labels` (e.g.
/// `route="/auth/validate"`; "" for all) on the `/metrics` endpoint at `addr`; NaN when there is
/// no endpoint or it cannot be read.
pub async fn sum(addr: Option<SocketAddr>, family: &str, labels: &str) -> f64 {
    let Some(addr) = addr else { return f64::NAN };
    let Ok(r) = reqwest::get(format!("http://{addr}/metrics")).await else { return f64::NAN };
    let Ok(text) = r.text().await else { return f64::NAN };
    sum_of(&text, family, labels)
}

fn sum_of(exposition: &str, family: &str, labels: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with(['{', ' ']) && l.contains(labels))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_matching_samples_of_one_family() {
        let text = "# TYPE http_requests_total counter\n\
                    http_requests_total{route=\"/auth/validate\",status=\"200\"} 3\n\
                    http_requests_total{route=\"/auth/validate\",status=\"401\"} 2\n\
                    http_requests_total{route=\"/auth/login\",status=\"200\"} 7\n\
                    http_requests_total_other{route=\"/auth/validate\"} 100\n\
                    gateway_revocations_live 42\n";
        assert_eq!(sum_of(text, "http_requests_total", r#"route="/auth/validate""#), 5.0);
        assert_eq!(sum_of(text, "http_requests_total", ""), 12.0);
        assert_eq!(sum_of(text, "gateway_revocations_live", ""), 42.0);
        assert_eq!(sum_of(text, "absent", ""), 0.0);
    }
}
