#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Pages are touched only when read.
///
/// The mapping lives as long as the object; tensors that view it keep it alive.
public final class MappedFile: @unchecked Sendable {
    /// The path as given.
    public let path: String
    /// The file's bytes (empty for an empty file).
    public let bytes: UnsafeRawBufferPointer
    /// File identity for caches: device, inode, size and modification time.
    public let identity: FileIdentity
    /// Whether `bytes` is an mmap (else an owned heap copy).
    private let isMapped: Bool

    /// Maps `path` read-only.
    /// - Throws: ``TensorFileError`` when the file cannot be opened, is not a regular file, or cannot be mapped.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TensorFileError(path: path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw TensorFileError(path: path, "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw TensorFileError(path: path, "not a regular file") }
        let size = Int(st.st_size)
        #if canImport(Glibc)
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        #else
        let mtime = Int64(st.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(st.st_mtimespec.tv_nsec)
        #endif
        identity = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(size),
                                modificationTimeNanoseconds: mtime)
        isMapped = size > 0
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw TensorFileError(path: path, "cannot map: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    /// An in-memory copy of `data` that parsers treat exactly like a mapped file (fuzzing, tests).
    /// - Parameter path: the name errors will show.
    public init(copying data: UnsafeRawBufferPointer, path: String) {
        self.path = path
        isMapped = false
        identity = FileIdentity(device: 0, inode: 0, size: Int64(data.count), modificationTimeNanoseconds: 0)
        if data.isEmpty {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: data.count, alignment: 64)
        copy.copyMemory(from: data)
        bytes = UnsafeRawBufferPointer(copy)
    }

    deinit {
        guard let base = bytes.baseAddress else { return }
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }

    /// The file's size in bytes.
    public var count: Int { bytes.count }
}

/// What identifies a file's content cheaply, for on-disk caches.
public struct FileIdentity: Hashable, Sendable, Codable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public var modificationTimeNanoseconds: Int64
}
