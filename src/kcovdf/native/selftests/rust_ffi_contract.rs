// SPDX-License-Identifier: GPL-2.0
//! The kernel series' rust_ffi_contract selftest, as a cdylib: df_fill reports success but,
//! once broken (df_break_fill, the injected bug), leaves its output buffer NULL; its caller
//! detects the broken contract and returns -EFAULT. The caller's captured return is the
//! evidence: learned from runs of the working df_fill, its contract flags the -EFAULT.

use std::ptr;

static mut BUF: [u8; 8] = [0; 8];
static mut BROKEN: bool = false;

/// The injected bug: from now on df_fill gives no buffer (and still says success).
#[no_mangle]
pub extern "C" fn df_break_fill(on: bool) {
    unsafe { BROKEN = on }
}

/// Fill *out with a buffer of n bytes: 0, or -EINVAL (-22) for none.
///
/// # Safety
/// out points to a writable pointer.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn df_fill(out: *mut *mut u8, n: usize) -> i32 {
    if n == 0 {
        return -22;
    }
    *out = if BROKEN { ptr::null_mut() } else { ptr::addr_of_mut!(BUF) as *mut u8 };
    0
}

/// df_fill's result, or -EFAULT (-14) when df_fill broke its contract.
#[no_mangle]
#[inline(never)]
pub extern "C" fn df_ffi_caller(n: usize) -> i32 {
    let mut buf: *mut u8 = ptr::null_mut();
    let r = unsafe { df_fill(&mut buf, n) };
    if r == 0 && buf.is_null() {
        return -14;
    }
    r
}
