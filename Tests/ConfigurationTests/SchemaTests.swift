import Configuration
import Foundation
import KVCompression
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A fresh temporary directory.
func temporaryDirectory() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-config-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.path
}

/// A valid config with both sections, SmolLM2-sized, memory recomputed.
func sampleConfig(layers nLayers: Int = 30) throws -> KVScopeConfig {
    var layers: [KVLayerEntry] = []
    for l in 0..<nLayers {
        layers.append(KVLayerEntry(layer: l, k: try BranchSetting(rank: 8 + 4 * l, bits: [2, 3, 4, 8, 16][l % 5]),
                                   v: try BranchSetting(rank: 192 - 3 * l, bits: [16, 8, 4, 3, 2][l % 5])))
    }
    let model = ModelReference(path: "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", architecture: "llama", nLayers: nLayers,
                               hiddenSize: 576, dKV: 192, sha256: String(repeating: "ab", count: 32))
    let placeholder = KVMemory(baselineBytes: 0, compressedBytes: 0, ratio: 0, nominalRatio: 0)
    var config = KVScopeConfig(
        model: model,
        kvCache: KVCacheSection(basis: .activations, window: 32, groupSize: 32, contextLength: 4096,
                                calibration: CalibrationReference(text: "Samples/calibration.txt", sha256: String(repeating: "0f", count: 32), nTokens: 952),
                                layers: layers, memory: placeholder),
        weights: WeightsSection(groupSize: 128, layers: (0..<5).map {
            WeightLayerEntry(tensor: "blk.\($0).attn_q.weight", bits: [2, 3, 4, 8, 16][$0], outlierFraction: $0 == 1 ? 0.01 : 0)
        }, memory: WeightMemory(baselineBytes: 1, compressedBytes: 0.3, bitsPerWeight: 4.8, ratio: 0.7)),
        metrics: .object([("kv_weighted_error", .double(0.1 + 0.2)), ("note", .string("1e5 \"quoted\" yes")),
                          ("list", .array([.int(1), .double(2.5e-7), .bool(true), .null]))]))
    let memory = try config.recomputedKVMemory()
    config.kvCache?.memory = memory
    return config
}

@Suite struct SchemaRoundTripTests {
    @Test(arguments: ["cfg.json", "cfg.yaml", "cfg.yml"])
    func writeThenReadIsIdentical(name: String) throws {
        let config = try sampleConfig()
        let path = try temporaryDirectory() + "/" + name
        try config.write(to: path, force: false)
        let back = try KVScopeConfig.load(path: path)
        #expect(back == config)
        // Writing the read config gives the same bytes (stable key order and number forms).
        let again = try temporaryDirectory() + "/" + name
        try back.write(to: again, force: false)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(contentsOf: URL(fileURLWithPath: again)))
    }

    @Test func jsonKeysInSchemaOrder() throws {
        let text = try sampleConfig().encoded(.json)
        let keys = ["\"format\"", "\"version\"", "\"model\"", "\"kv_cache\"", "\"weights\"", "\"metrics\""]
        let positions = keys.compactMap { text.range(of: $0)?.lowerBound }
        #expect(positions.count == keys.count && positions == positions.sorted())
        #expect(text.contains("{\"layer\": 0, \"k\": {\"rank\": 8, \"bits\": 2}, \"v\": {\"rank\": 192, \"bits\": 16}}"))
    }

    @Test func pythonReadsTheSameValues() throws {
        // An independent JSON and YAML parser (Python's json and, when present, PyYAML) sees the same numbers.
        let config = try sampleConfig()
        let dir = try temporaryDirectory()
        try config.write(to: dir + "/c.json", force: false)
        let script = "import json,sys; c=json.load(open(sys.argv[1])); print(c['kv_cache']['memory']['compressed_bytes'], c['kv_cache']['layers'][3]['v']['rank'], c['metrics']['kv_weighted_error'])"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, dir + "/c.json"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let memory = try #require(config.kvCache?.memory.compressedBytes)
        #expect(text.trimmingCharacters(in: .whitespacesAndNewlines) == "\(memory) 183 \(0.1 + 0.2)")
    }

    @Test func neverOverwritesSilently() throws {
        let config = try sampleConfig()
        let path = try temporaryDirectory() + "/cfg.json"
        try config.write(to: path, force: false)
        #expect {
            try config.write(to: path, force: false)
        } throws: { ($0 as? ConfigError)?.description == "\(path): already exists; pass --force to overwrite it" }
        var changed = config
        changed.metrics = .object([("x", .int(1))])
        try changed.write(to: path, force: true)
        #expect(try KVScopeConfig.load(path: path) == changed)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path)
        #expect(leftovers == ["cfg.json"], "no temporary files left behind")
    }
}

/// Edits a config's document tree at a dotted path like `kv_cache.layers[12].k.rank`.
func edited(_ value: ConfigValue, _ path: [String], _ newValue: ConfigValue?) -> ConfigValue {
    guard let head = path.first else { return newValue ?? .null }
    let rest = Array(path.dropFirst())
    if head.hasPrefix("["), let i = Int(head.dropFirst().dropLast()), case .array(var items) = value {
        if rest.isEmpty, newValue == nil { items.remove(at: i) } else { items[i] = edited(items[i], rest, newValue) }
        return .array(items)
    }
    guard case .object(var members) = value else { return value }
    if let i = members.firstIndex(where: { $0.key == head }) {
        if rest.isEmpty && newValue == nil { members.remove(at: i) } else { members[i].value = edited(members[i].value, rest, newValue) }
    } else if let newValue {
        members.append((head, newValue))
    }
    return .object(members)
}

/// Expects the config `tree`, written as JSON and as YAML, to be refused by the reader with an error
/// of the written file's path that `accepts`.
func expectEveryFormatRejects(_ tree: ConfigValue, sourceLocation: SourceLocation = #_sourceLocation,
                              _ accepts: @escaping (ConfigError) -> Bool) throws {
    for format in ConfigFormat.allCases {
        let text = format == .json ? tree.prettyJSON : try tree.yaml()
        let path = "cfg.\(format.rawValue)"
        #expect(sourceLocation: sourceLocation) {
            _ = try KVScopeConfig.decode(Array(text.utf8), format: format, path: path)
        } throws: { error in
            guard let e = error as? ConfigError else { return false }
            return e.path == path && accepts(e)
        }
    }
}

func pathComponents(_ dotted: String) -> [String] {
    var out: [String] = []
    for part in dotted.split(separator: ".") {
        var s = String(part)
        while let open = s.firstIndex(of: "[") {
            if open != s.startIndex { out.append(String(s[..<open])) }
            let close = s.firstIndex(of: "]") ?? s.endIndex
            out.append(String(s[open...close]))
            s = String(s[s.index(after: close)...])
        }
        if !s.isEmpty { out.append(s) }
    }
    return out
}

@Suite struct ValidationMessageTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var entry: String
        var value: ConfigValue?
        var message: String
        var testDescription: String { message }
    }

    static let cases: [Case] = [
        Case(entry: "kv_cache.layers[12].k.rank", value: .int(300), message: "kv_cache.layers[12].k.rank: 300 exceeds d_kv 192"),
        Case(entry: "kv_cache.layers[2].v.rank", value: .int(0), message: "kv_cache.layers[2].v.rank: 0 is below 1"),
        Case(entry: "kv_cache.layers[4].v.bits", value: .int(9), message: "kv_cache.layers[4].v.bits: 9 is not in 2…8 or 16"),
        Case(entry: "weights.layers[3].bits", value: .int(9), message: "weights.layers[3].bits: 9 is not in 2…8 or 16"),
        Case(entry: "weights.layers[1].outlier_fraction", value: .double(1.5), message: "weights.layers[1].outlier_fraction: 1.5 is not in [0, 1)"),
        Case(entry: "kv_cache.basis", value: .string("pca"),
             message: "kv_cache.basis: unknown basis \"pca\" (expected activations, weights, asvd, fitted)"),
        Case(entry: "format", value: .string("other"), message: "format: expected \"kvscope-config\", found \"other\""),
        Case(entry: "version", value: .int(2), message: "version: 2 is not supported (this kvscope reads version 1)"),
        Case(entry: "kv_cache.layers[5].layer", value: .int(3), message: "kv_cache.layers[5].layer: duplicate layer 3 (also kv_cache.layers[3])"),
        Case(entry: "kv_cache.layers[29]", value: nil, message: "kv_cache.layers: missing layer 29 (1 of 30)"),
        Case(entry: "kv_cache.layers[7].layer", value: .int(30), message: "kv_cache.layers[7].layer: 30 is outside 0…29"),
        Case(entry: "kv_cache.memory.compressed_bytes", value: .double(1),
             message: "kv_cache.memory.compressed_bytes: 1.0 does not match"),
        Case(entry: "kv_cache.window", value: .string("32"), message: "kv_cache.window: expected an integer, found a string \"32\""),
        Case(entry: "kv_cache.layers[0].k.rnak", value: .int(3), message: "kv_cache.layers[0].k.rnak: unknown key (expected one of rank, bits)"),
        Case(entry: "kv_cache.layers[0].k.bits", value: nil, message: "kv_cache.layers[0].k.bits: missing"),
        Case(entry: "model.sha256", value: .string("xyz"), message: "model.sha256: \"xyz\" is not 64 lower-case hex digits"),
        Case(entry: "model.d_kv", value: .int(64), message: "kv_cache.layers[0].v.rank: 192 exceeds d_kv 64"),
        Case(entry: "weights.layers[2].tensor", value: .string("blk.0.attn_q.weight"),
             message: "weights.layers[2].tensor: duplicate tensor blk.0.attn_q.weight (also weights.layers[0])"),
        Case(entry: "kv_cache.calibration", value: nil, message: "kv_cache.calibration: missing (the activations basis is computed from calibration text)"),
        Case(entry: "metrics", value: .array([]), message: "metrics: expected an object, found an array"),
    ]

    @Test(arguments: cases)
    func namesTheEntry(_ c: Case) throws {
        let tree = edited(try sampleConfig().document, pathComponents(c.entry), c.value)
        try expectEveryFormatRejects(tree) { $0.entryDescription.hasPrefix(c.message) }
    }

    @Test func needsASection() throws {
        var tree = edited(try sampleConfig().document, ["kv_cache"], nil)
        tree = edited(tree, ["weights"], nil)
        #expect { _ = try KVScopeConfig.decode(Array(tree.prettyJSON.utf8), format: .json) } throws: {
            ($0 as? ConfigError)?.entryDescription == "has neither a kv_cache nor a weights section"
        }
    }

    @Test func yamlDuplicateKeyIsNamed() throws {
        let yaml = try sampleConfig().document.yaml().replacingOccurrences(of: "window: 32\n", with: "window: 32\n  window: 16\n")
        #expect { _ = try KVScopeConfig.decode(Array(yaml.utf8), format: .yaml, path: "c.yaml") } throws: {
            ($0 as? ConfigError)?.description == "c.yaml: bad YAML: duplicate key window (line 12, column 3)"
        }
    }

    @Test func jsonSyntaxErrorNamesTheOffset() throws {
        #expect { _ = try KVScopeConfig.decode(Array("{\"format\": }".utf8), format: .json, path: "c.json") } throws: {
            let e = $0 as? ConfigError
            return e?.path == "c.json" && e?.entry == "offset 11"
        }
    }
}
