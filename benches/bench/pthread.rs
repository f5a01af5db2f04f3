//! The ceiling's thread start: `pthread_create` without std's alternate signal
//! stack, the cheapest thread per connection this code base knows. A baseline only:
//! peerdex itself starts its connection threads with `std::thread::Builder` (the
//! measurement is in docs/DESIGN.md, Performance, issue 24). Used by the ceiling
//! server (system (c) of the index section) and by `benches/spawn.rs`.

use std::io;

/// The connection threads' stack, as peerdex gives them.
const STACK: usize = peerdex::internals::CONNECTION_STACK;

/// The name of ceiling threads (at most 15 bytes and the NUL, as Linux allows).
const THREAD_NAME: &std::ffi::CStr = c"ceiling-conn";

/// Starts `f` on a new detached thread with a [`STACK`] stack, without std's
/// alternate signal stack (mmap, mprotect and sigaltstack at start, sigaltstack and
/// munmap at exit, each taking the process-wide memory-map lock for writing). glibc's
/// guard page is still below the stack; a panic is caught, not unwound into C.
pub fn spawn<F>(f: F) -> io::Result<()>
where
    F: FnOnce() + Send + 'static,
{
    extern "C" fn start<F: FnOnce()>(arg: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: `arg` is the `Box<F>` leaked by `spawn`, handed
        // to exactly this one thread.
        let f = unsafe { Box::from_raw(arg.cast::<F>()) };
        // A panic must not unwind into C; the panic hook has already reported it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        std::ptr::null_mut()
    }
    let arg = Box::into_raw(Box::new(f));
    // SAFETY: plain pthread calls on a local attribute object; on success the new
    // thread owns `arg`, on failure it is reclaimed here.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let rc = libc::pthread_attr_init(&mut attr);
        if rc != 0 {
            drop(Box::from_raw(arg));
            return Err(io::Error::from_raw_os_error(rc));
        }
        let mut rc = libc::pthread_attr_setstacksize(&mut attr, STACK);
        if rc == 0 {
            rc = libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        }
        if rc == 0 {
            let mut tid: libc::pthread_t = std::mem::zeroed();
            rc = libc::pthread_create(&mut tid, &attr, start::<F>, arg.cast());
            if rc == 0 {
                // The name shows in top -H, ps -L and debuggers; failing to set it
                // changes nothing else.
                libc::pthread_setname_np(tid, THREAD_NAME.as_ptr());
            }
        }
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            drop(Box::from_raw(arg));
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}
