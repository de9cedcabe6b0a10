// SPDX-License-Identifier: GPL-2.0
//! The kernel series' eight_args_rust selftest, as a cdylib: eight_args_c in Rust, with a
//! #[repr(C)] pair. Built with kcovdf rustc, called from Python through ctypes.

#[repr(C)]
pub struct Pair {
    pub a: u64,
    pub b: u64,
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn df_func1(a1: u64) -> u64 {
    a1 + 0x22
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn df_func2(a1: u64, a2: u64) -> u64 {
    a1 + a2
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn df_func3(a1: u64, a2: u64, a3: u64) -> u64 {
    a1 + a2 + a3
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn df_func4(a1: u64, a2: u64, a3: u64, a4: u64) -> u64 {
    a1 + a2 + a3 + a4
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn df_func5(a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> u64 {
    a1 + a2 + a3 + a4 + a5
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn df_func6(a1: u64, a2: u64, a3: u64, a4: u64, a5: u64, a6: u64) -> u64 {
    a1 + a2 + a3 + a4 + a5 + a6
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn df_func7(a1: u64, a2: u64, a3: u64, a4: u64, a5: u64, a6: u64, a7: u64) -> u64 {
    a1 + a2 + a3 + a4 + a5 + a6 + a7
}

#[no_mangle]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn df_func8(a1: u64, a2: u64, a3: u64, a4: u64, a5: u64, a6: u64, a7: u64, a8: u64) -> u64 {
    a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8
}

/// # Safety
/// p points to a Pair.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn df_func_struct(p: *const Pair) -> u64 {
    (*p).a + (*p).b
}
