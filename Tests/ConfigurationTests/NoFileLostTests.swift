import Foundation
import Testing
@testable import Configuration
import TensorFiles

/// No file lost (RELIABILITY.md): writing a config or a safetensors file into a full file system, a
/// read-only one or onto a device fails with an error that names the file, leaves the existing file
/// byte for byte as it was, and leaves no temporary file behind. The full and read-only file systems
/// are a 64 KiB tmpfs mounted for the test (root only; skipped where mount is not permitted).
@Suite(.serialized) struct NoFileLostTests {
    /// A fresh 64 KiB tmpfs, or nil when this process may not mount one.
    final class TinyFileSystem {
        let path: String
        init?() {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-tiny-\(UUID().uuidString)").path
            guard (try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)) != nil,
                  Self.shell("mount -t tmpfs -o size=64k tmpfs '\(path)'") == 0 else {
                try? FileManager.default.removeItem(atPath: path)
                return nil
            }
        }
        deinit {
            _ = Self.shell("umount '\(path)'")
            try? FileManager.default.removeItem(atPath: path)
        }
        @discardableResult static func shell(_ command: String) -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", command + " 2>/dev/null"]
            guard (try? p.run()) != nil else { return -1 }
            p.waitUntilExit()
            return p.terminationStatus
        }
        /// Fills the remaining space with a filler file.
        func fill() {
            let fd = open(path + "/filler", O_WRONLY | O_CREAT, 0o644)
            let block = [UInt8](repeating: 0xAB, count: 4096)
            while block.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
            close(fd)
        }
        func remountReadOnly() -> Bool { Self.shell("mount -o remount,ro '\(path)'") == 0 }
        /// Files other than the old one and the filler (a stray temporary file would show here).
        func strays(keeping: Set<String>) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { !keeping.contains($0) && $0 != "filler" }
        }
    }

    static let canMount: Bool = TinyFileSystem() != nil

    static let old = Array("the old file, which must survive\n".utf8)

    static func config() throws -> KVScopeConfig {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Corpus/config/valid.json")
        return try KVScopeConfig.decode([UInt8](Data(contentsOf: url)), format: .json)
    }

    static func safetensors() throws -> SafeTensorsWriter {
        var w = SafeTensorsWriter(metadata: ["kvscope": "test"])
        try w.add("a", floats: [Float](repeating: 1.5, count: 32 * 1024), shape: [32, 1024])  // 128 KiB > the tmpfs
        return w
    }

    /// The three writers, each asked to replace `path`.
    static let writers: [(String, @Sendable (String) throws -> Void)] = [
        ("config JSON", { try config().write(to: $0, force: true) }),
        ("config text", { try writeText(String(repeating: "x", count: 200_000), to: $0, force: true) }),
        ("safetensors", { try safetensors().write(to: $0, overwrite: true) }),
    ]

    static func expectIntact(_ fs: TinyFileSystem, _ name: String, _ what: String) {
        let data = FileManager.default.contents(atPath: fs.path + "/" + name).map { [UInt8]($0) }
        #expect(data == old, "\(what): the old file changed")
        #expect(fs.strays(keeping: [name]).isEmpty, "\(what): left \(fs.strays(keeping: [name]))")
    }

    static func expectNamedError(_ error: any Error, _ path: String, _ words: String, _ what: String) {
        let text = "\(error)"
        #expect(text.contains(path) && text.contains(words), "\(what): \(text)")
        #expect(!text.contains("\n"), "\(what): the error is not one line: \(text)")
    }

    /// Writer `writer`, asked to replace an existing out.json on a tiny file system that `spoil` broke,
    /// fails with one line naming the file and `words`, keeps the old file and leaves nothing behind.
    func expectOldFileKept(writer: Int, words: String, spoil: (TinyFileSystem) throws -> Void) throws {
        let (what, write) = Self.writers[writer]
        let fs = try #require(TinyFileSystem())
        let target = fs.path + "/out.json"
        #expect(FileManager.default.createFile(atPath: target, contents: Data(Self.old)))
        try spoil(fs)
        do {
            try write(target)
            Issue.record("\(what): writing succeeded on a file system that fails with \"\(words)\"")
        } catch {
            Self.expectNamedError(error, target, words, what)
        }
        Self.expectIntact(fs, "out.json", what)
    }

    @Test(.enabled(if: canMount), arguments: 0..<3)
    func fullFileSystemKeepsTheOldFile(writer: Int) throws {
        try expectOldFileKept(writer: writer, words: "No space left on device") { $0.fill() }
    }

    @Test(.enabled(if: canMount), arguments: 0..<3)
    func readOnlyFileSystemKeepsTheOldFile(writer: Int) throws {
        try expectOldFileKept(writer: writer, words: "Read-only file system") { try #require($0.remountReadOnly()) }
    }

    /// As root, renaming over a device node would replace it: the writer refuses instead. The node is
    /// a private copy of /dev/full (char 1,7), made with mknod in a temporary directory.
    @Test(.enabled(if: canMount), arguments: 0..<3)
    func aDeviceIsNeverReplaced(writer: Int) throws {
        let (what, write) = Self.writers[writer]
        let fs = try #require(TinyFileSystem())
        let node = fs.path + "/full"
        try #require(mknod(node, S_IFCHR | 0o666, 0x107 /* makedev(1, 7) */) == 0)
        do {
            try write(node)
            Issue.record("\(what): wrote over a device")
        } catch {
            Self.expectNamedError(error, node, "not a regular file", what)
        }
        var info = stat()
        #expect(stat(node, &info) == 0 && info.st_mode & S_IFMT == S_IFCHR, "\(what): the device node was replaced")
        #expect(fs.strays(keeping: ["full"]).isEmpty)
    }
}
