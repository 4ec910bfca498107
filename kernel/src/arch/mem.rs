//! `memcpy`, `memmove`, `memset` and `memcmp`/`bcmp` for the kernel, as plain loops of
//! 8-byte moves and compares: `plinth_mem::string_routines!`, which the agents' `hostshim`
//! links too (see that crate for why: `rep`-prefixed string instructions cost one TCG
//! exit per iteration). `selftest` checks them against byte-at-a-time loops at boot.
//!
//! Owns nothing else.

plinth_mem::string_routines!();
