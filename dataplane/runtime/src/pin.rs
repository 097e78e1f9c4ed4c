//! CPU pinning: worker i runs on the i-th CPU this process may use.
#![allow(unsafe_code)]

/// The CPUs in this thread's affinity mask, ascending.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain old data; zeroed is a valid empty set, and
    // sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        return (0..n).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: i < CPU_SETSIZE, the bound CPU_ISSET requires.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// Pins the calling thread to `cpu`. Failure is not fatal (the worker runs
/// unpinned) and is reported to the caller for logging.
pub(crate) fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    // SAFETY: as above; CPU_SET writes inside the set for cpu < CPU_SETSIZE,
    // which the caller's CPU list (from allowed_cpus) guarantees.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::other("cpu index out of range"));
    }
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: set is a valid, initialised cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
