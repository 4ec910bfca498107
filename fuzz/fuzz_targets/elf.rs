//! Agent executables against arbitrary bytes: the parser must never panic, and an
//! executable it accepts must keep every promise the crate makes: at least one and at
//! most the limit of segments, sorted by address, each non-empty with its pages inside
//! the agent window and its bytes inside the file, page-wise mappable and never both
//! writable and executable, no page shared by two, the entry point inside an executable
//! segment, and the memory total within the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plinth_elf::{Executable, Limits, PAGE_SIZE, Window};

fuzz_target!(|data: &[u8]| {
    let (window, limits) = (Window::AGENT, Limits::AGENT);
    let Ok(exe) = Executable::parse(data, window, limits) else {
        return;
    };
    assert!(!exe.segments.is_empty() && exe.segments.len() <= limits.max_segments);
    for pair in exe.segments.windows(2) {
        assert!(pair[0].vaddr < pair[1].vaddr, "not sorted");
        assert!(pair[0].pages().end <= pair[1].pages().start, "overlap");
    }
    let mut bytes = 0u64;
    for s in &exe.segments {
        let pages = s.pages();
        assert!(
            window.start <= pages.start && pages.end <= window.end,
            "outside window"
        );
        assert!(pages.start % PAGE_SIZE == 0 && pages.end % PAGE_SIZE == 0);
        assert!(s.mem_size > 0 && s.file_size <= s.mem_size);
        assert_eq!(s.vaddr % PAGE_SIZE, s.file_offset % PAGE_SIZE);
        assert!(!(s.perms.write && s.perms.execute), "W^X");
        assert_eq!(s.file_bytes(data).len() as u64, s.file_size);
        bytes += pages.end - pages.start;
    }
    assert!(bytes <= limits.max_memory);
    assert_eq!(exe.memory_pages(), bytes / PAGE_SIZE);
    assert!(
        exe.segments
            .iter()
            .any(|s| s.perms.execute && s.vaddr <= exe.entry && exe.entry - s.vaddr < s.mem_size),
        "entry not in an executable segment"
    );
});
