import Foundation
import Testing
@testable import TensorFiles

/// The real SmolLM2 GGUF against gguf-py's reader and dequantize (Tests/Reference/gguf_golden.py).
@Suite struct GGUFSmolLM2Tests {
    @Test func headerMatchesGGUFPy() throws {
        guard let path = GGUFTestPaths.requireSmolLM2() else { return }
        let golden = try GGUFTestPaths.goldenJSON("smollm2_dequant.json")
        let file = try GGUFFile(path: path)
        #expect(file.version == golden["version"] as? Int)
        #expect(file.alignment == golden["alignment"] as? Int)
        #expect(file.dataOffset == golden["data_offset"] as? Int)
        #expect(file.metadataKeys == golden["metadata_keys"] as? [String])

        let metadata = try #require(golden["metadata"] as? [String: [String: Any]])
        for (key, expected) in metadata {
            let entry = try #require(file.metadataEntries.first { $0.key == key }, "missing key \(key)")
            #expect(entry.value.type.description == expected["type"] as? String, "type of \(key)")
            if case .array(let elementType, let elements) = entry.value {
                #expect(elementType.description == expected["element_type"] as? String, "element type of \(key)")
                #expect(elements.count == expected["count"] as? Int, "count of \(key)")
                if let first = expected["first"] as? [String] {
                    #expect(elements.prefix(first.count).map { $0.metadataValue.stringValue } == first, "first elements of \(key)")
                }
            } else if let s = expected["value"] as? String {
                #expect(file[key]?.stringValue == s, "value of \(key)")
            } else if let n = expected["value"] as? NSNumber {
                if entry.value.type == .bool {
                    #expect(file[key]?.boolValue == n.boolValue, "value of \(key)")
                } else {
                    #expect(file[key]?.doubleValue == n.doubleValue, "value of \(key)")
                }
            } else {
                Issue.record("golden value of \(key) has no known form")
            }
        }
        // The architecture facts the catalog will read.
        #expect(file["general.architecture"]?.stringValue == "llama")
        #expect(file["llama.block_count"]?.intValue == 30)
        #expect(file["llama.embedding_length"]?.intValue == 576)
        #expect(file["llama.attention.head_count"]?.intValue == 9)
        #expect(file["llama.attention.head_count_kv"]?.intValue == 3)
        #expect(file["llama.rope.freq_base"]?.doubleValue == 100_000)

        let tensors = try #require(golden["tensors"] as? [[String: Any]])
        #expect(file.tensors.count == tensors.count)
        for (t, g) in zip(file.tensors, tensors) {
            #expect(t.name == g["name"] as? String)
            #expect(t.dtype == g["type"] as? String, "dtype of \(t.name)")
            #expect(t.shape == g["shape"] as? [Int], "shape of \(t.name)")
            #expect(t.byteOffset == g["offset"] as? Int, "offset of \(t.name)")
            #expect(t.byteCount == g["bytes"] as? Int, "bytes of \(t.name)")
        }
        let k = try #require(file.tensor(named: "blk.0.attn_k.weight"))
        #expect(k.shape == [192, 576])
        #expect(file.ggmlType(of: k) == .q4_1)
    }

    @Test func everyTensorDequantizesBitIdenticallyToGGUFPy() throws {
        guard let path = GGUFTestPaths.requireSmolLM2() else { return }
        let golden = try GGUFTestPaths.goldenJSON("smollm2_dequant.json")
        let tensors = try #require(golden["tensors"] as? [[String: Any]])
        let file = try GGUFFile(path: path)
        var checked = 0, hashed = 0
        for g in tensors {
            let name = try #require(g["name"] as? String)
            let values = try file.floats(named: name)
            let shape = try #require(g["shape"] as? [Int])
            #expect(values.count == shape.reduce(1, *), "count of \(name)")
            let first = try #require(g["first_bits"] as? [Int])
            #expect(firstBits(values, first.count) == first, "first values of \(name)")
            #expect(weightedChecksum(values) == g["weighted_sum"] as? String, "checksum of \(name) (\(g["type"] ?? ""))")
            // Full SHA-256 where a debug build can afford it (SHA-256 runs at a few MB/s unoptimized):
            // every F32 tensor and one Q4_1 matrix; the fixture tests hash every type in full.
            if values.count <= 1024 || name == "blk.0.attn_k.weight" {
                #expect(SHA256.hex(floats: values) == g["sha256"] as? String, "sha256 of \(name)")
                hashed += 1
            }
            checked += 1
        }
        #expect(checked == 272)
        #expect(hashed == 62)
    }
}
