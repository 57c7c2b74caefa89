//! The memory behind the table: a sealed memfd made by the master, mapped MAP_SHARED by
//! every worker; or, for tests, an anonymous shared mapping.

use super::layout::region_len;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags};
use nix::sys::stat::fstat;
use nix::unistd::ftruncate;
use std::ffi::{c_void, CStr};
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::ptr::NonNull;

/// Creates the zero-filled region for `capacity` flows, sealed against resizing: a worker
/// that could shrink it would make every other worker fault on its next access.
pub fn create_region(capacity: usize) -> io::Result<OwnedFd> {
    create_sealed(c"loaded-flow-table", region_len(capacity))
}

/// A zero-filled memfd of `len` bytes named `name` (for /proc/PID/maps), sealed against
/// resizing; shared by the flow table and the counters.
pub(crate) fn create_sealed(name: &CStr, len: usize) -> io::Result<OwnedFd> {
    let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "shared region too large"))?;
    ftruncate(&fd, len)?;
    fcntl(
        &fd,
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL,
        ),
    )?;
    Ok(fd)
}

/// A read-write shared mapping, unmapped on drop.
pub struct SharedMemory {
    start: NonNull<c_void>,
    len: usize,
}

impl SharedMemory {
    /// Maps the region of `fd`, which must be sealed against shrinking and exactly
    /// `region_len(capacity)` bytes long: any other size was made for another capacity or
    /// by another build, and its buckets would not be where we look.
    pub fn of_region(fd: BorrowedFd<'_>, capacity: usize) -> io::Result<SharedMemory> {
        let expected = region_len(capacity);
        let actual = fstat(fd)?.st_size;
        if u64::try_from(actual).ok() != Some(expected as u64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "flow table region is {actual} bytes, but {expected} are needed for \
                     {capacity} flows: it was made for another capacity or by another version"
                ),
            ));
        }
        SharedMemory::of_sealed(fd, expected)
    }

    /// Maps all `len` bytes of `fd`, whose size the caller has checked, after checking that
    /// it is sealed against shrinking.
    pub(crate) fn of_sealed(fd: BorrowedFd<'_>, len: usize) -> io::Result<SharedMemory> {
        let seals = SealFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GET_SEALS)?);
        if !seals.contains(SealFlag::F_SEAL_SHRINK) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "shared region is not sealed against shrinking",
            ));
        }
        // SAFETY: a fresh mapping at an address the kernel chooses cannot alias any Rust
        // object. The file cannot shrink (checked seal), and the caller checked that it
        // holds `len` bytes, so every byte stays backed and access never raises SIGBUS.
        let start = unsafe {
            mmap(
                None,
                non_zero(len),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                fd,
                0,
            )
        }?;
        Ok(SharedMemory { start, len })
    }

    /// Zero-filled shared memory for `len` bytes, that only this process (and children
    /// forked later) can see.
    pub fn anonymous(len: usize) -> io::Result<SharedMemory> {
        // SAFETY: as in `of_region`, a fresh kernel-placed mapping aliases nothing, and
        // anonymous memory has no file that could shrink under it.
        let start = unsafe {
            mmap_anonymous(
                None,
                non_zero(len),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }?;
        Ok(SharedMemory { start, len })
    }

    /// Page-aligned start of `len()` bytes that live as long as `self`.
    pub fn start(&self) -> NonNull<u8> {
        self.start.cast()
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

fn non_zero(len: usize) -> NonZeroUsize {
    NonZeroUsize::new(len).unwrap_or(NonZeroUsize::MIN)
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: `start` and `len` are exactly what mmap returned and was asked for, and
        // every reference into the mapping borrows `self`, so none outlives this call.
        if let Err(e) = unsafe { munmap(self.start, self.len) } {
            log::warn!("cannot unmap a shared region: {e}");
        }
    }
}

// SAFETY: the mapping is process-wide memory, not tied to the thread that made it, and it
// is only ever accessed through atomics.
unsafe impl Send for SharedMemory {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn the_region_is_sized_and_sealed() {
        let fd = create_region(1000).unwrap();
        assert_eq!(
            fstat(fd.as_fd()).unwrap().st_size as usize,
            region_len(1000)
        );
        let seals = SealFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GET_SEALS).unwrap());
        assert!(
            seals.contains(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL)
        );
        assert!(ftruncate(&fd, 4096).is_err());
        assert!(fcntl(&fd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_WRITE)).is_err());
    }

    #[test]
    fn a_region_of_the_wrong_size_is_refused() {
        let fd = create_region(1000).unwrap();
        let error = match SharedMemory::of_region(fd.as_fd(), 100_000) {
            Ok(_) => panic!("mapped a region made for 1000 flows as one for 100000"),
            Err(e) => e,
        };
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        let message = error.to_string();
        assert!(message.contains(&region_len(1000).to_string()), "{message}");
        assert!(message.contains("100000 flows"), "{message}");
    }

    #[test]
    fn an_unsealed_region_is_refused() {
        let fd = memfd_create(c"unsealed", MFdFlags::MFD_CLOEXEC).unwrap();
        ftruncate(&fd, region_len(8) as libc::off_t).unwrap();
        let error = SharedMemory::of_region(fd.as_fd(), 8)
            .err()
            .expect("mapped an unsealed region");
        assert!(error.to_string().contains("sealed"), "{error}");
    }
}
