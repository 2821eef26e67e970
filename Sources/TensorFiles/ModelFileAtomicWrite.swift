#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file atomically: the bytes go to a temporary file in the destination's directory,
/// which is flushed and then renamed over the destination. Readers see the old file or the
/// whole new one, never a partial write.
///
/// A failed write (full disk, read-only directory) leaves the destination untouched and removes the
/// temporary file, and so does SIGINT, SIGTERM or SIGHUP mid-write (see `TemporaryFileRegistry`).
/// Only SIGKILL (or a signal the program handles itself) can leave the temporary file behind: it is
/// named `.NAME.tmp-XXXXXX` next to the destination.
public final class AtomicFileWriter {
    /// The destination path.
    public let path: String
    private let temporaryPath: String
    private var fd: Int32
    private var done = false

    /// Creates the temporary file next to `path`.
    /// - Parameter overwrite: when false, an existing destination is an error (checked now and
    ///   again at commit, which then uses a no-replace link).
    /// - Throws: ``TensorFileError`` when the temporary file cannot be created.
    public init(path: String, overwrite: Bool = true) throws {
        self.path = path
        if !overwrite, access(path, F_OK) == 0 {
            throw TensorFileError(path: path, "refusing to overwrite an existing file")
        }
        // Renaming over a device, FIFO or directory would replace it (as root even /dev/full): only a
        // regular file, or nothing, may be at the destination.
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & S_IFMT != S_IFREG {
            throw TensorFileError(path: path, "is not a regular file; not writing to it")
        }
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[...$0]) } ?? ""
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        // The temporary name is registered for the signal handler *before* the file is created
        // (O_EXCL, a fresh random suffix on a clash), so no signal can arrive between creation and
        // registration and leave the file behind.
        var created: (fd: Int32, path: String, slot: Int?)?
        for _ in 0..<64 {
            let candidate = "\(dir).\(base).tmp-\(Self.randomSuffix())"
            let slot = TemporaryFileRegistry.register(candidate)
            let fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd >= 0 {
                created = (fd, candidate, slot)
                break
            }
            let code = errno
            TemporaryFileRegistry.unregister(slot)
            guard code == EEXIST else {
                throw TensorFileError(path: path, "cannot create a temporary file: \(String(cString: strerror(code)))")
            }
        }
        guard let created else { throw TensorFileError(path: path, "cannot create a temporary file: every name tried exists") }
        self.fd = created.fd
        self.temporaryPath = created.path
        self.registration = created.slot
        self.overwrite = overwrite
        _ = fchmod(fd, 0o644)
    }
    private let overwrite: Bool
    private var registration: Int?

    /// Six characters from [A-Za-z0-9], as mkstemp(3) would choose.
    private static func randomSuffix() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<6).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
    }

    /// Appends bytes.
    /// - Throws: ``TensorFileError`` on a write error (e.g. a full disk).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            guard let base = bytes.baseAddress else { return }
            let n = systemWrite(fd, base + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw TensorFileError(path: path, "write failed: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    /// Appends the bytes of an array.
    public func write<T>(_ values: [T]) throws {
        try values.withUnsafeBytes { try write($0) }
    }

    /// Flushes the temporary file to disk and renames it to the destination.
    /// - Throws: ``TensorFileError`` when flushing or renaming fails (the temporary file is removed).
    public func commit() throws {
        guard !done else { throw TensorFileError(path: path, "already committed") }
        done = true
        defer {
            unlink(temporaryPath)
            TemporaryFileRegistry.unregister(registration)
        }
        guard fsync(fd) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw TensorFileError(path: path, "fsync failed: \(message)")
        }
        close(fd)
        if overwrite {
            guard rename(temporaryPath, path) == 0 else {
                throw TensorFileError(path: path, "cannot rename the temporary file: \(String(cString: strerror(errno)))")
            }
        } else {
            // link() fails with EEXIST instead of replacing, so a file created meanwhile survives.
            guard link(temporaryPath, path) == 0 else {
                throw TensorFileError(path: path, errno == EEXIST ? "refusing to overwrite an existing file"
                                                                  : "cannot create: \(String(cString: strerror(errno)))")
            }
        }
    }

    deinit {
        if !done {
            close(fd)
            unlink(temporaryPath)
            TemporaryFileRegistry.unregister(registration)
        }
    }
}

/// libc write(2), named apart from ``AtomicFileWriter/write(_:)``.
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}
