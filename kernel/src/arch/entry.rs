//! The symbol the boot stub calls.

/// Defines `plinth_kernel_main`, the symbol `plinth-boot`'s stub calls in long mode on
/// the boot stack with interrupts off, as a call of `$main(start_info, entry_tsc)`.
///
/// A macro, expanded where the kernel's main function is, so that `arch` names nothing
/// above it.
#[macro_export]
macro_rules! entry_point {
    ($main:path) => {
        // SAFETY: the one definition of the symbol the boot stub calls, with the C ABI
        // and the (start_info, entry_tsc) arguments it passes.
        #[allow(unsafe_code, reason = "the boot stub calls this symbol by name")]
        #[unsafe(no_mangle)]
        extern "C" fn plinth_kernel_main(start_info: u64, entry_tsc: u64) -> ! {
            $main(start_info, entry_tsc)
        }
    };
}
