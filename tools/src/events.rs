//! `plinth events`: the runtime's event log (`GET /api/v1/events?since=N`) as lines, and
//! following it as it grows.
//!
//! Owns reading pages of events in order, noticing events the runtime's ring dropped
//! before they were read, and one line per event. Each kind's fields are printed as the
//! runtime sent them (`key=value`), so a kind this tool does not know prints too. It must
//! not interpret events (restart policy, alerts): it shows them.

use std::net::SocketAddr;
use std::time::Duration;

use plinth_control::views::{EventList, EventView};
use serde_json::Value;

use crate::api::{self, ApiError};

/// The events route.
pub const PATH: &str = "/api/v1/events";

/// `seq  time  partition[/agent]  kind key=value …` (the fields in name order), for
/// example `#12  6.203 s  marked/grow-marked  memory_high high_bytes=12582912 …`.
pub fn format_event(e: &EventView) -> String {
    let who = match &e.agent {
        Some(a) => format!("{}/{a}", e.partition),
        None => e.partition.clone(),
    };
    let mut line = format!(
        "#{:<5} {:>10.3} s  {who}  {}",
        e.seq,
        e.time_ms / 1000.0,
        e.kind.name()
    );
    if let Ok(Value::Object(fields)) = serde_json::to_value(&e.kind) {
        for (k, v) in fields {
            if k == "kind" {
                continue;
            }
            match v {
                Value::String(s) => line += &format!(" {k}={s:?}"),
                other => line += &format!(" {k}={other}"),
            }
        }
    }
    line
}

/// The lines for one page read after `since`: a note first if the runtime's ring
/// dropped events between `since` and the page's first.
pub fn page_lines(since: u64, page: &EventList) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(first) = page.events.first()
        && first.seq > since + 1
        && since > 0
    {
        lines.push(format!(
            "(events #{} to #{} were dropped from the runtime's log before they were read)",
            since + 1,
            first.seq - 1
        ));
    }
    lines.extend(page.events.iter().map(format_event));
    lines
}

/// Reads the events after `since`; returns the page and the next `since`.
pub fn read_after(
    addr: SocketAddr,
    since: u64,
    timeout: Duration,
) -> Result<(EventList, u64), ApiError> {
    let page: EventList = api::get_view(addr, &format!("{PATH}?since={since}"), timeout)?;
    let next = page.last_seq.max(since);
    Ok((page, next))
}

/// Prints the events after `since`, then, if `follow`, every new one as it comes
/// (polling every `every`), until the API fails.
pub fn print(
    addr: SocketAddr,
    mut since: u64,
    follow: bool,
    every: Duration,
    timeout: Duration,
    mut out: impl FnMut(&str),
) -> Result<(), ApiError> {
    loop {
        let (page, next) = read_after(addr, since, timeout)?;
        for line in page_lines(since, &page) {
            out(&line);
        }
        since = next;
        if !follow {
            return Ok(());
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plinth_control::views::EventKind;

    fn event(seq: u64, agent: Option<&str>, kind: EventKind) -> EventView {
        EventView::new(seq, 6_203_157_000, "marked", agent, kind)
    }

    #[test]
    fn one_line_per_event_with_its_fields() {
        let e = event(
            12,
            Some("grow"),
            EventKind::MemoryHigh {
                used_bytes: 12_746_752,
                high_bytes: 12 << 20,
                quota_bytes: 16 << 20,
            },
        );
        assert_eq!(
            format_event(&e),
            "#12         6.203 s  marked/grow  memory_high high_bytes=12582912 \
             quota_bytes=16777216 used_bytes=12746752"
        );
        let e = event(
            3,
            None,
            EventKind::Alert {
                reason: "quarantined \"x\"".into(),
            },
        );
        assert_eq!(
            format_event(&e),
            "#3          6.203 s  marked  alert reason=\"quarantined \\\"x\\\"\""
        );
        let e = event(4, None, EventKind::PartitionCreated);
        assert_eq!(
            format_event(&e),
            "#4          6.203 s  marked  partition_created"
        );
    }

    #[test]
    fn dropped_events_are_said_before_the_page() {
        let page = EventList {
            events: vec![event(40, None, EventKind::PartitionCreated)],
            last_seq: 40,
        };
        let lines = page_lines(10, &page);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            "(events #11 to #39 were dropped from the runtime's log before they were read)"
        );
        // From the start, or with nothing missing, no note.
        assert_eq!(page_lines(0, &page).len(), 1);
        assert_eq!(page_lines(39, &page).len(), 1);
        let empty = EventList {
            events: vec![],
            last_seq: 39,
        };
        assert!(page_lines(39, &empty).is_empty());
    }
}
