import Foundation
import Testing
@testable import TensorFiles

/// Paths of the repository, found from this file.
enum GGUFTestPaths {
    static let root: URL = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
            url.deleteLastPathComponent()
        }
        return url
    }()

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    static let smolLM2 = path("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    static let golden = path("Tests/Golden/gguf")
    static let corpus = path("Tests/Corpus/gguf")

    /// The SmolLM2 file, or a recorded failure saying how to get it.
    static func requireSmolLM2() -> String? {
        guard FileManager.default.fileExists(atPath: smolLM2) else {
            Issue.record("missing \(smolLM2): run `make models` (tests need the real model)")
            return nil
        }
        return smolLM2
    }

    /// A golden JSON document from Tests/Golden/gguf.
    static func goldenJSON(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: golden).appendingPathComponent(name))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TensorFileError(path: name, "golden file is not a JSON object")
        }
        return object
    }

    /// A fresh temporary file path.
    static func temporary(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-\(UUID().uuidString)-\(name)").path
    }
}

/// Σ (2i+1)·bits(values[i]) mod 2⁶⁴ as 16 hex digits (gguf_golden.py's `weighted_sum`): cheap enough
/// for debug builds on all 135M SmolLM2 values, and any single changed value changes it.
func weightedChecksum(_ values: [Float]) -> String {
    values.withUnsafeBufferPointer { v in
        var sum: UInt64 = 0, weight: UInt64 = 1
        for x in v {
            sum = sum &+ UInt64(x.bitPattern) &* weight
            weight = weight &+ 2
        }
        let hex = String(sum, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// The first values' float32 bit patterns, as the golden files list them.
func firstBits(_ values: [Float], _ n: Int) -> [Int] { values.prefix(n).map { Int($0.bitPattern) } }

extension UInt32 {
    fileprivate func rotatedRight(_ n: UInt32) -> UInt32 { (self >> n) | (self << (32 - n)) }
}

@Suite struct GGUFTestSupportTests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func sha256MatchesTheStandardVectors(input: String, digest: String) {
        #expect(SHA256.hex(Array(input.utf8)) == digest)
    }
}
