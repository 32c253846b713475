//! Checking a Prometheus text exposition (the `/metrics` of our binaries) in tests: a strict
//! parse into samples, and Prometheus' own linter, `promtool check metrics` (Debian package
//! `prometheus`, installed by the test command's set-up).
//! Format: <https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// Parses `text` strictly enough to catch a broken exposition: every line is empty, a comment
/// (`# HELP name ...` / `# TYPE name <type>`) or `name{labels} value`. Returns series (name
/// with its labels as written) → value. The error names the first bad line.
pub fn parse(text: &str) -> Result<HashMap<String, f64>, String> {
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let bad = |what: &str| format!("bad {what} in {line:?}");
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap_or_default();
            if kind != "HELP" && kind != "TYPE" {
                return Err(bad("comment"));
            }
            if !valid_metric_name(parts.next().unwrap_or_default()) {
                return Err(bad("metric name"));
            }
            let types = ["counter", "gauge", "histogram", "summary", "untyped"];
            if kind == "TYPE" && !types.contains(&parts.next().unwrap_or_default()) {
                return Err(bad("type"));
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| bad("sample"))?;
        let name = series.split('{').next().unwrap_or_default();
        if !valid_metric_name(name) {
            return Err(bad("metric name"));
        }
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty())
            && !(labels.starts_with('{') && labels.ends_with('}'))
        {
            return Err(bad("labels"));
        }
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| bad("value"))?,
        };
        samples.insert(series.to_owned(), value);
    }
    Ok(samples)
}

/// [`parse`] for a test: a broken exposition fails the test with the bad line.
pub fn samples(text: &str) -> HashMap<String, f64> {
    parse(text).unwrap_or_else(|e| panic!("{e}"))
}

/// A sample's value, 0 when absent (a counter vec has no series until first used).
pub fn sample(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

fn valid_metric_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
}

/// Runs `promtool check metrics` on `text`. The error carries promtool's findings, or says how
/// to install it.
pub fn promtool_check(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("promtool not found ({e}): run scripts/test.sh, which installs it (Debian package prometheus)")
        })?;
    child
        .stdin
        .take()
        .ok_or("promtool's stdin is not a pipe")?
        .write_all(text.as_bytes())
        .map_err(|e| format!("writing to promtool: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("waiting for promtool: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_expositions_parse_and_broken_ones_name_the_line() {
        let text = "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"b\"} 3\ny +Inf\n";
        let samples = parse(text).unwrap();
        assert_eq!(samples["x_total{a=\"b\"}"], 3.0);
        assert_eq!(samples["y"], f64::INFINITY);
        for bad in ["# TYPE x nonsense\n", "1x 2\n", "x{a=\"b\" 2\n", "x two\n", "# NOTE x\n", "x\n"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(&format!("{:?}", bad.trim_end())), "{bad:?}: {err}");
        }
    }
}
