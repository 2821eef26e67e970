import Foundation
import Testing
@testable import TensorFiles

/// Paths and helpers shared by the safetensors, npy and catalog tests.
enum TestPaths {
    /// The repository root, found from this file's path.
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func repo(_ relative: String) -> String { root.appendingPathComponent(relative).path }
    static let minilm = repo("models/minilm/model.safetensors")

    /// A fresh temporary directory for one test.
    static func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.path
    }

    /// Parses a golden JSON file with Foundation (independent of the code under test).
    static func json(_ relative: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: repo(relative))))
    }

    /// Fails the test with a clear message when a real model is missing (`make test` fetches them).
    static func requireModel(_ path: String) -> Bool {
        guard FileManager.default.fileExists(atPath: path) else {
            Issue.record("model missing: \(path); run `make models` first")
            return false
        }
        return true
    }
}

/// Test helpers around the library's SHA-256 (TensorFiles.SHA256).
extension SHA256 {

    /// The digest of float32 data (kept as a name for the golden tests).
    static func fastHex(_ floats: [Float]) -> String { hex(floats: floats) }

    /// The digest from coreutils' sha256sum, an independent check of ``SHA256``.

    static func toolHex(_ floats: [Float]) throws -> String? {
        let tool = "/usr/bin/sha256sum"
        guard FileManager.default.isExecutableFile(atPath: tool) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        floats.withUnsafeBytes { input.fileHandleForWriting.write(Data($0)) }
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).split(separator: " ").first.map(String.init)
    }
}


@Suite struct SHA256Tests {
    @Test func knownDigests() {
        let empty = [UInt8]().withUnsafeBytes { SHA256.hex($0) }
        #expect(empty == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let abc = Array("abc".utf8).withUnsafeBytes { SHA256.hex($0) }
        #expect(abc == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array(String(repeating: "a", count: 1000).utf8).withUnsafeBytes { SHA256.hex($0) }
        #expect(long == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    @Test func theToolAgreesWithTheSwiftDigest() throws {
        let floats = (0..<300_000).map { Float($0) * 0.37 - 1000 }
        let tool = try SHA256.toolHex(floats)
        if let tool { #expect(tool == SHA256.hex(floats: floats)) }
    }
}
