//! The symbol the boot stub calls.

/// Called by `plinth-boot`'s stub in long mode, on the boot stack, interrupts off.
#[unsafe(no_mangle)]
extern "C" fn plinth_kernel_main(start_info: u64, entry_tsc: u64) -> ! {
    crate::kernel_main(start_info, entry_tsc)
}
