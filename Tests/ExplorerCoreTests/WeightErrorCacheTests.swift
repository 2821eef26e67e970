import Configuration
import ExplorerCore
import Foundation
import Inference
import Quantization
import Testing

/// Weight error tables are cached on disk (Inference.WeightErrorCache through
/// ModelSession.weightErrorTables): a second run reads them, a damaged file is never trusted. The
/// tables themselves are checked against numpy (Tests/Golden/quant/smollm2_quantize.json, 4 bits,
/// group 128, asymmetric, no outliers: `kvscope quantize`'s defaults).
@Suite(.serialized) struct WeightErrorCacheTests {
    static let choices = ErrorTableChoices(bits: [4], groupSizes: [128], outlierFractions: [0], mode: .asymmetric)

    static func environment() throws -> [String: String] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-wcache-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return ["XDG_CACHE_HOME": dir, "HOME": dir]
    }

    /// `tables` with the first table's first relative error replaced by `value` (through its JSON form).
    static func doctored(_ tables: [ErrorTable], value: Double) throws -> [ErrorTable] {
        var list = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(tables)) as? [[String: Any]])
        var errors = try #require(list[0]["relativeErrors"] as? [Double])
        errors[0] = value
        list[0]["relativeErrors"] = errors
        return try JSONDecoder().decode([ErrorTable].self, from: JSONSerialization.data(withJSONObject: list))
    }

    @Test func aSecondRunReadsTheCacheAndADamagedFileIsRecomputed() throws {
        let env = try Self.environment()
        defer { try? FileManager.default.removeItem(atPath: env["XDG_CACHE_HOME"] ?? "") }
        let session = try ModelSession(path: smolLM2Path)
        let cache = WeightErrorCache(directory: WeightErrorCache.defaultDirectory(environment: env))
        #expect(cache.directory.path == (env["XDG_CACHE_HOME"] ?? "") + "/kvscope/weight-errors")
        let sha = try ModelHashCache.sha256(ofFile: smolLM2Path, environment: env)
        let file = cache.fileURL(modelSHA256: sha, choices: Self.choices)
        #expect(!FileManager.default.fileExists(atPath: file.path))

        // First run: computed, equal to numpy, and stored.
        let first = try session.weightErrorTables(choices: Self.choices, environment: env)
        #expect(first.count == 210)
        #expect(FileManager.default.fileExists(atPath: file.path))
        let golden = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: repositoryRoot.appendingPathComponent(
            "Tests/Golden/quant/smollm2_quantize.json"))) as? [String: Any])
        let want = try #require(golden["tensors"] as? [[String: Any]])
        let byName = Dictionary(uniqueKeysWithValues: first.map { ($0.name, $0) })
        #expect(Set(want.compactMap { $0["tensor"] as? String }) == Set(byName.keys))
        for w in want {
            let t = try #require(byName[w["tensor"] as? String ?? ""])
            let e = try #require(t.entry(bits: 4, groupSize: 128, outlierFraction: 0))
            let ref = try #require(w["rel_error"] as? Double)
            #expect(abs(e.relativeError - ref) <= 1e-5 * ref, "\(t.name): \(e.relativeError) vs numpy \(ref)")
            #expect(e.bytes == (w["bytes"] as? NSNumber)?.doubleValue, "\(t.name)")
        }

        // Second run: the same tables, read back (a subset in any order too).
        #expect(try session.weightErrorTables(choices: Self.choices, environment: env) == first)
        let names = [first[5].name, first[0].name]
        #expect(try session.weightErrorTables(tensors: names, choices: Self.choices, environment: env) == [first[5], first[0]])

        // It is the file that answers: a valid file with one figure changed is what the next run returns.
        try cache.store(try Self.doctored(first, value: 0.5), modelSHA256: sha, choices: Self.choices)
        let read = try session.weightErrorTables(choices: Self.choices, environment: env)
        #expect(read.first { $0.name == first[0].name }?.relativeErrors == [0.5])

        // A damaged file (one byte of the payload changed, its checksum not) is rejected, recomputed and replaced.
        var bytes = [UInt8](try Data(contentsOf: file))
        let at = try #require(bytes.lastIndex(of: UInt8(ascii: "5")))
        bytes[at] = UInt8(ascii: "6")
        try Data(bytes).write(to: file)
        #expect(cache.load(modelSHA256: sha, choices: Self.choices) == nil)
        #expect(try session.weightErrorTables(choices: Self.choices, environment: env) == first)
        #expect(cache.load(modelSHA256: sha, choices: Self.choices)?.sorted { $0.name < $1.name } == first.sorted { $0.name < $1.name })

        // Truncated, empty, or another grid's file: a miss each time.
        let good = try Data(contentsOf: file)
        for broken in [good.prefix(good.count / 2), Data(), Data("not json\n[]".utf8)] {
            try broken.write(to: file)
            #expect(cache.load(modelSHA256: sha, choices: Self.choices) == nil)
        }
        try good.write(to: file)
        let other = ErrorTableChoices(bits: [3], groupSizes: [128], outlierFractions: [0], mode: .asymmetric)
        try FileManager.default.copyItem(at: file, to: cache.fileURL(modelSHA256: sha, choices: other))
        #expect(cache.load(modelSHA256: sha, choices: other) == nil, "the header's key names the grid")
        // Shapes are checked against the model's.
        #expect(cache.load(modelSHA256: sha, choices: Self.choices, shapes: [first[0].name: (rows: 1, cols: 1)]) == nil)
        #expect(cache.load(modelSHA256: sha, choices: Self.choices,
                           shapes: Dictionary(uniqueKeysWithValues: first.map { ($0.name, (rows: $0.rows, cols: $0.cols)) })) != nil)
    }
}
