#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The temporary files of ``AtomicFileWriter``s in flight, removed when SIGINT, SIGTERM or SIGHUP
/// ends the process, so an interrupted export leaves neither a partial file nor a stray temporary one.
///
/// The handler is installed once, for each signal whose disposition is still the default (a program
/// that handles a signal itself, such as the explorer, keeps its handler). It only reads fixed C
/// buffers, calls unlink(2), restores the default action and re-raises: all async-signal-safe.
/// SIGKILL cannot be caught; then the temporary file `.NAME.tmp-XXXXXX` stays next to the destination.
enum TemporaryFileRegistry {
    static let slots = 32
    static let slotBytes = 4096

    private struct Storage: @unchecked Sendable {
        let paths: UnsafeMutablePointer<CChar>
        /// 1 while the slot holds a complete path.
        let used: UnsafeMutablePointer<sig_atomic_t>
        let lock: UnsafeMutablePointer<pthread_mutex_t>
    }

    private static let storage: Storage = {
        let paths = UnsafeMutablePointer<CChar>.allocate(capacity: slots * slotBytes)
        paths.initialize(repeating: 0, count: slots * slotBytes)
        let used = UnsafeMutablePointer<sig_atomic_t>.allocate(capacity: slots)
        used.initialize(repeating: 0, count: slots)
        let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        let storage = Storage(paths: paths, used: used, lock: lock)
        for sig in [SIGINT, SIGTERM, SIGHUP] { installIfDefault(sig) }
        return storage
    }()

    private static func installIfDefault(_ sig: Int32) {
        var old = sigaction()
        guard sigaction(sig, nil, &old) == 0, old.__sigaction_handler.sa_handler == nil else { return }
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { sig in
            let s = TemporaryFileRegistry.storage
            for i in 0..<TemporaryFileRegistry.slots where s.used[i] == 1 {
                unlink(s.paths + i * TemporaryFileRegistry.slotBytes)
            }
            signal(sig, SIG_DFL)
            raise(sig)
        }
        sigemptyset(&action.sa_mask)
        sigaction(sig, &action, nil)
    }

    /// Records a temporary path; returns its slot, or nil when the path is too long or all slots are busy
    /// (the file is then only removed by the writer itself).
    static func register(_ path: String) -> Int? {
        let s = storage
        let bytes = Array(path.utf8)
        guard bytes.count < slotBytes else { return nil }
        pthread_mutex_lock(s.lock)
        defer { pthread_mutex_unlock(s.lock) }
        for i in 0..<slots where s.used[i] == 0 {
            let slot = s.paths + i * slotBytes
            for (j, b) in bytes.enumerated() { slot[j] = CChar(bitPattern: b) }
            slot[bytes.count] = 0
            s.used[i] = 1
            return i
        }
        return nil
    }

    /// Forgets a slot (after the temporary file was renamed or removed).
    static func unregister(_ slot: Int?) {
        guard let slot, slot >= 0, slot < slots else { return }
        let s = storage
        pthread_mutex_lock(s.lock)
        s.used[slot] = 0
        s.paths[slot * slotBytes] = 0
        pthread_mutex_unlock(s.lock)
    }
}
