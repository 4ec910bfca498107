//! `plinth top`: the runtime's profiler (`GET /api/v1/profile?window=S`) as a table that
//! refreshes, like `top`: one row per partition, its agents indented under it.
//!
//! Owns the table's columns and the refresh loop. The measurements are the runtime's
//! (`plinth_control::views::TopView`); this module only lays them out.

use std::net::SocketAddr;
use std::time::Duration;

use plinth_control::views::{StatView, TopView};

use crate::api::{self, ApiError};
use crate::text::{format_bytes, table};

pub const PATH: &str = "/api/v1/profile";

fn avg(s: Option<StatView>, show: impl Fn(f64) -> String) -> String {
    s.map_or_else(|| String::from("-"), |s| show(s.avg))
}

/// The table for one answer: `window` seconds, as the runtime measured them.
pub fn format_top(v: &TopView, window: u32) -> String {
    let mut rows = vec![vec![
        "PARTITION/AGENT".to_string(),
        "STATUS".to_string(),
        "CPU%".to_string(),
        "MEM".to_string(),
        "CALLS/s".to_string(),
        "DISK IOPS".to_string(),
        "DISK/s".to_string(),
        "NET pkt/s".to_string(),
        "NET/s".to_string(),
    ]];
    for r in &v.rows {
        let w = &r.window;
        let name = match &r.agent {
            Some(a) => format!("  {a}"),
            None => r.partition.clone(),
        };
        rows.push(vec![
            name,
            r.status.as_ref().map_or("", |s| s.as_str()).to_string(),
            avg(w.cpu_percent, |x| format!("{x:.1}")),
            avg(w.memory_bytes, |x| format_bytes(x as u64)),
            avg(w.syscalls_per_sec, |x| format!("{x:.0}")),
            avg(w.disk_iops, |x| format!("{x:.0}")),
            avg(w.disk_bytes_per_sec, |x| format_bytes(x as u64)),
            avg(w.net_packets_per_sec, |x| format!("{x:.0}")),
            avg(w.net_bytes_per_sec, |x| format_bytes(x as u64)),
        ]);
    }
    format!(
        "plinth top: up {:.1} s, averages over the last {window} s\n{}",
        v.uptime_ns as f64 / 1e9,
        table(&rows)
    )
}

/// One answer for `window` seconds (1, 10 or 60).
pub fn read(addr: SocketAddr, window: u32, timeout: Duration) -> Result<TopView, ApiError> {
    api::get_view(addr, &format!("{PATH}?window={window}"), timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plinth_control::views::{AgentState, TopRow, WindowView};

    #[test]
    fn partitions_then_their_agents_with_averages() {
        let stat = |avg| {
            Some(StatView {
                avg,
                peak: avg * 2.0,
            })
        };
        let v = TopView {
            uptime_ns: 12_345_000_000,
            rows: vec![
                TopRow {
                    partition: "web".into(),
                    agent: None,
                    status: None,
                    window: WindowView {
                        seconds: 1,
                        samples: 1,
                        cpu_percent: stat(42.25),
                        memory_bytes: stat(2.0 * 1048576.0),
                        net_packets_per_sec: stat(10.0),
                        ..WindowView::default()
                    },
                },
                TopRow {
                    partition: "web".into(),
                    agent: Some("echo".into()),
                    status: Some(AgentState::Running),
                    window: WindowView {
                        seconds: 1,
                        samples: 1,
                        cpu_percent: stat(42.25),
                        disk_iops: stat(200.0),
                        ..WindowView::default()
                    },
                },
            ],
        };
        let t = format_top(&v, 1);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "plinth top: up 12.3 s, averages over the last 1 s"
        );
        assert!(lines[1].starts_with("PARTITION/AGENT"), "{t}");
        assert!(lines[2].starts_with("web "), "{t}");
        assert!(
            lines[2].contains("42.2") && lines[2].contains("2 MiB"),
            "{t}"
        );
        assert!(
            lines[3].starts_with("  echo") && lines[3].contains("running"),
            "{t}"
        );
        assert!(lines[3].contains("200"), "{t}");
    }
}
