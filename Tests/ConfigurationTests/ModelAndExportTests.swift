import Configuration
import Foundation
import KVCompression
import LinearAlgebra
import Quantization
import TensorFiles
import Testing

/// Tests/Golden/config/sha256.json, written by Tests/Reference/config_sha256.py (Python's hashlib).
struct SHAGolden: Decodable {
    var vectors: [String: String]
    var files: [String: String]
}

@Suite struct SHA256Tests {
    static let golden = Result {
        try JSONDecoder().decode(SHAGolden.self, from: Data(contentsOf: repositoryRoot.appendingPathComponent("Tests/Golden/config/sha256.json")))
    }

    @Test func vectorsMatchHashlib() throws {
        let g = try Self.golden.get()
        #expect(!g.vectors.isEmpty)
        for (spec, digest) in g.vectors {
            // spec is "COUNTxCHAR": COUNT repetitions of one ASCII character (covers every padding boundary).
            let parts = spec.split(separator: "x", maxSplits: 1)
            let count = try #require(Int(parts[0]))
            let bytes = [UInt8](repeating: parts.count > 1 ? parts[1].utf8.first ?? 0 : 0, count: count)
            #expect(SHA256.hex(bytes) == digest, "\(spec)")
            // Fed in uneven pieces: the same digest.
            var h = SHA256()
            var i = 0, step = 1
            while i < bytes.count {
                let end = min(bytes.count, i + step)
                h.update(Array(bytes[i..<end]))
                i = end
                step = step * 3 + 1
            }
            #expect(h.finalizeHex() == digest)
        }
    }

    @Test func filesMatchHashlibAndTheCache() throws {
        let g = try Self.golden.get()
        let cache = try temporaryDirectory()
        for (relative, digest) in g.files {
            let path = repositoryRoot.appendingPathComponent(relative).path
            if relative.hasPrefix("Samples/") { #expect(try SHA256.hex(fileAt: path) == digest, "\(relative)") }
            let env = ["XDG_CACHE_HOME": cache]
            #expect(try ModelHashCache.sha256(ofFile: path, environment: env) == digest)
            #expect(try ModelHashCache.sha256(ofFile: path, environment: env) == digest, "from the cache")
        }
        let entries = try FileManager.default.contentsOfDirectory(atPath: cache + "/kvscope/sha256")
        #expect(entries.count == g.files.count)
    }

    @Test func cacheIsKeyedByFileIdentity() throws {
        let dir = try temporaryDirectory()
        let file = dir + "/m.bin"
        try Data("one".utf8).write(to: URL(fileURLWithPath: file))
        let env = ["XDG_CACHE_HOME": dir + "/cache"]
        #expect(try ModelHashCache.sha256(ofFile: file, environment: env) == SHA256.hex(Array("one".utf8)))
        try Data("two!".utf8).write(to: URL(fileURLWithPath: file))
        #expect(try ModelHashCache.sha256(ofFile: file, environment: env) == SHA256.hex(Array("two!".utf8)))
    }
}

@Suite struct ModelValidationTests {
    static func description(architecture: String = "llama", layers: Int = 30, kvHeads: Int = 3) -> ModelDescription {
        let hp = ModelHyperparameters(architecture: architecture, nLayers: layers, hiddenSize: 576, nHeads: 9, nKVHeads: kvHeads, headDim: 64,
                                      vocabSize: 49152, contextLength: 8192, ffnSize: 1536, ropeTheta: 1e5, normEps: 1e-5, tiedEmbeddings: true)
        return ModelDescription(hyperparameters: hp, matrices: (0..<layers).map { (name: "blk.\($0).attn_q.weight", shape: MatrixShape(rows: 576, cols: 576)) })
    }

    /// The sample config with its weight memory made consistent with `description()`.
    static func consistentConfig() throws -> KVScopeConfig {
        var c = try sampleConfig()
        let memory = try c.recomputedWeightMemory(description())
        c.weights?.memory = memory
        return c
    }

    @Test func acceptsTheModelItWasMadeFor() throws {
        try Self.consistentConfig().validate(against: Self.description())
    }

    @Test func weightMemoryMatchesTheQuantizationScheme() throws {
        let m = try Self.consistentConfig().recomputedWeightMemory(Self.description())
        // Independent arithmetic (DESIGN.md §4): n·b/8 + groups·4 (+ CSR outliers) per matrix, n = 576·576, g = 128.
        let n = 576.0 * 576.0, groups = 576.0 * 5
        let outliers = (0.01 * n).rounded(.down)
        let csr = outliers * 4 + 4 * 577
        let expected = (n * 2 / 8 + groups * 4) + (n * 3 / 8 + groups * 4 + csr) + (n * 4 / 8 + groups * 4) + (n * 8 / 8 + groups * 4) + n * 2
        #expect(abs(m.compressedBytes - expected) <= 2 * 4, "\(m.compressedBytes) vs \(expected)")
        #expect(m.baselineBytes == 5 * 2 * n)
    }

    @Test func mismatchesNameTheEntry() throws {
        let c = try Self.consistentConfig()
        #expect { try c.validate(against: Self.description(architecture: "qwen2")) } throws: {
            ($0 as? ConfigError)?.entryDescription == "model.architecture: config says llama, the model is qwen2"
        }
        #expect { try c.validate(against: Self.description(layers: 32)) } throws: {
            ($0 as? ConfigError)?.entryDescription == "model.n_layers: config says 30, the model has 32"
        }
        #expect { try c.validate(against: Self.description(kvHeads: 2)) } throws: {
            ($0 as? ConfigError)?.entryDescription == "model.d_kv: config says 192, the model has 128"
        }
        var w = c
        w.weights?.layers[2].tensor = "blk.99.attn_q.weight"
        #expect { try w.validate(against: Self.description()) } throws: {
            ($0 as? ConfigError)?.entryDescription == "weights.layers[2].tensor: the model has no layer weight matrix named blk.99.attn_q.weight"
        }
        var m = c
        m.weights?.memory.compressedBytes += 10
        #expect { try m.validate(against: Self.description()) } throws: {
            (($0 as? ConfigError)?.entryDescription ?? "").hasPrefix("weights.memory.compressed_bytes:")
        }
        #expect { try c.checkModelHash(String(repeating: "cd", count: 32), allowMismatch: false) } throws: {
            (($0 as? ConfigError)?.entryDescription ?? "").hasPrefix("model.sha256: the config was made for abab")
        }
        try c.checkModelHash(String(repeating: "cd", count: 32), allowMismatch: true)
    }
}

@Suite struct TunerTests {
    /// A small random error model: `layers` layers, d_kv 16, random Grams and samples with decaying spectra.
    static func errorModel(layers: Int, seed: UInt64) throws -> ErrorModel {
        var entries: [ErrorModelEntry] = []
        for l in 0..<layers {
            for kind in [ProjectionKind.k, .v] {
                var k = Matrix.gaussian(rows: 64, cols: 16, seed: seed &+ UInt64(2 * l + (kind == .k ? 0 : 1)))
                let scale = Float(1 + l) * (kind == .k ? 2 : 1)
                k.withUnsafeMutableBufferPointer { p in
                    for t in 0..<64 { for j in 0..<16 { p[t * 16 + j] *= scale * Float(pow(0.8, Double(j))) } }
                }
                let gram = try matmul(k, .transpose, k, .none)
                entries.append(ErrorModelEntry(layer: l, kind: kind, basis: try .activations(keyGram: gram), weight: nil, gram: gram, samples: k))
            }
        }
        let model = try ErrorModel(basisKind: .activations, entries: entries, defaultGroupSize: 4)
        try model.fillQuantizedTables(bits: [2, 4, 8], groupSize: 4)
        return model
    }

    @Test func rankChoices() {
        #expect(KVTuner.rankChoices(kvSize: 192, minRank: 1, step: 8) == Array(1...8) + stride(from: 16, through: 192, by: 8).map { $0 })
        #expect(KVTuner.rankChoices(kvSize: 20, minRank: 6, step: 8) == [6, 7, 8, 16, 20])
        #expect(KVTuner.rankChoices(kvSize: 4, minRank: 5, step: 8).isEmpty)
    }

    @Test(arguments: [0.15, 0.25, 0.4])
    func withinBudgetAndNoWorseThanUniform(fraction: Double) throws {
        let model = try Self.errorModel(layers: 4, seed: 7)
        var settings = KVTuneSettings()
        settings.bitsChoices = [2, 4, 8, 16]
        settings.groupSize = 4
        settings.window = 8
        settings.contextLength = 256
        settings.rankStep = 1
        let memory = try BiBranchMemoryModel(kvSize: 16, hiddenSize: 32, window: 8, groupSize: 4, basis: .activations)
        let budget = fraction * (try memory.baselineTotalBytes(layerCount: 4, contextLength: 256))
        let plan = try KVTuner.tune(model, layerCount: 4, kvSize: 16, memory: memory, settings: settings, budget: budget)
        #expect(plan.bytes <= budget)
        #expect(abs(try KVTuner.totalCost(model, layers: plan.layers, groupSize: 4) - plan.totalCost) <= 1e-9 * plan.totalCost)
        let uniform = try #require(try KVTuner.bestUniform(model, layerCount: 4, kvSize: 16, memory: memory, settings: settings, budget: budget))
        #expect(uniform.bytes <= budget)
        // Every uniform plan is one of the tuner's choices (rank step 1), so the optimum is never worse.
        #expect(plan.totalCost <= uniform.totalCost * (1 + 1e-12))
    }
}

@Suite struct ExportFormatTests {
    @Test func factorsRoundTripThroughSafeTensors() throws {
        let config = try sampleConfig(layers: 3).withDKV(24)
        var seed: UInt64 = 3
        var expected: [String: Matrix] = [:]
        let writer = try ConfigExport.factorsFile(config: config) { layer, kind, rank in
            seed += 2
            let a = Matrix.gaussian(rows: rank, cols: 576, seed: seed), b = Matrix.gaussian(rows: 24, cols: rank, seed: seed + 1)
            expected[ConfigExport.factorName(layer: layer, kind: kind, factor: "A")] = a
            expected[ConfigExport.factorName(layer: layer, kind: kind, factor: "B")] = b
            return try LowRankFactors(a: a, b: b)
        }
        let path = try temporaryDirectory() + "/f.safetensors"
        try writer.write(to: path, overwrite: false)
        let file = try SafeTensorsFile(path: path)
        #expect(Set(file.tensors.map(\.name)) == Set(expected.keys))
        for t in file.tensors {
            let m = try #require(expected[t.name])
            #expect(t.shape == [m.rows, m.cols])
            #expect(file.dtype(of: t) == .f16)
            let values = try file.floats(t)
            let worst = zip(values, m.storage).map { abs($0 - $1) / max(abs($1), 1e-3) }.max() ?? 0
            #expect(worst <= 1e-3, "\(t.name): fp16 rounding only")
        }
        let embedded = try #require(file.metadata[ConfigExport.configMetadataKey])
        #expect(try KVScopeConfig.decode(Array(embedded.utf8), format: .json) == config)
        #expect(file.tensors.first { $0.name == "model.layers.1.self_attn.v_proj.lora_A.weight" }?.shape == [config.kvCache?.layers[1].v.rank ?? 0, 576])
    }

    @Test func llamaQuantizeArgumentsParse() throws {
        let config = try sampleConfig()
        let (arguments, notes) = try ConfigExport.llamaQuantizeArguments(config: config)
        #expect(arguments.count == 2 * 5)
        var parsed: [String: String] = [:]
        var i = 0
        while i < arguments.count {
            #expect(arguments[i] == "--tensor-type")
            let parts = arguments[i + 1].split(separator: "=")
            #expect(parts.count == 2)
            parsed[String(parts[0])] = String(parts[1])
            i += 2
        }
        #expect(parsed["^blk\\.0\\.attn_q\\.weight$"] == "q2_k")
        #expect(parsed["^blk\\.1\\.attn_q\\.weight$"] == "q3_k")
        #expect(parsed["^blk\\.2\\.attn_q\\.weight$"] == "q4_k")
        #expect(parsed["^blk\\.3\\.attn_q\\.weight$"] == "q8_0")
        #expect(parsed["^blk\\.4\\.attn_q\\.weight$"] == "f16")
        #expect(notes.first == "bits → GGUF type: 2→Q2_K, 3→Q3_K, 4→Q4_K, 8→Q8_0, 16→F16")
        #expect(notes.contains { $0.contains("1 tensors plan fp16 outliers") })
        #expect((5...7).map(ConfigExport.ggufType) == ["Q5_K", "Q6_K", "Q8_0"])
    }

    @Test func paluDocumentParses() throws {
        let config = try sampleConfig()
        let text = try ConfigExport.paluDocument(config: config).prettyJSON
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let ranks = try #require(doc["head_wise_ranks"] as? [String: [Int]])
        #expect(ranks.count == 60)
        #expect(ranks["model.layers.12.self_attn.k_proj"] == [8 + 4 * 12])
        #expect(ranks["model.layers.29.self_attn.v_proj"] == [192 - 3 * 29])
    }
}

extension KVScopeConfig {
    /// The config with d_kv changed and ranks clamped to it, memory recomputed.
    func withDKV(_ d: Int) throws -> KVScopeConfig {
        var c = self
        c.model.dKV = d
        if var kv = c.kvCache {
            kv.layers = try kv.layers.map {
                KVLayerEntry(layer: $0.layer, k: try BranchSetting(rank: min($0.k.rank, d), bits: $0.k.bits),
                             v: try BranchSetting(rank: min($0.v.rank, d), bits: $0.v.bits))
            }
            c.kvCache = kv
            let memory = try c.recomputedKVMemory()
            c.kvCache?.memory = memory
        }
        return c
    }
}

/// Every export format read back gives the config's plan exactly (the issue's round-trip requirement).
@Suite struct ExportRoundTripTests {
    @Test func paluRanksAndBitsReadBackAsTheConfigLayers() throws {
        let config = try sampleConfig()
        let path = try temporaryDirectory() + "/head_wise_ranks.json"
        try writeText(try ConfigExport.paluDocument(config: config).prettyJSON, to: path, force: false)
        let doc = try ConfigValue.parseJSON(Array(try Data(contentsOf: URL(fileURLWithPath: path))), path: path)
        guard case .object(let ranks)? = doc["head_wise_ranks"], case .object(let bits)? = doc["kvscope_bits"] else {
            Issue.record("no head_wise_ranks / kvscope_bits objects")
            return
        }
        #expect(ranks.count == 60 && bits.count == 60 && doc["num_lr_groups"] == .int(1))
        func branch(_ layer: Int, _ proj: String) throws -> BranchSetting {
            let key = "model.layers.\(layer).self_attn.\(proj)"
            guard case .array(let r)? = doc["head_wise_ranks"]?[key], r.count == 1, case .int(let rank) = r[0],
                  case .int(let b)? = doc["kvscope_bits"]?[key] else { throw ConfigError(entry: key, "missing") }
            return try BranchSetting(rank: rank, bits: b)
        }
        let back = try (0..<30).map { KVLayerEntry(layer: $0, k: try branch($0, "k_proj"), v: try branch($0, "v_proj")) }
        #expect(back == config.kvCache?.layers)
    }

    @Test func llamaQuantizeOverridesReadBackAsTheWeightPlan() throws {
        let config = try sampleConfig()
        let (arguments, _) = try ConfigExport.llamaQuantizeArguments(config: config)
        let typeBits = ["q2_k": 2, "q3_k": 3, "q4_k": 4, "q8_0": 8, "f16": 16]
        var plan: [(String, Int)] = []
        for pair in stride(from: 0, to: arguments.count, by: 2) {
            #expect(arguments[pair] == "--tensor-type")
            let parts = arguments[pair + 1].split(separator: "=").map(String.init)
            try #require(parts.count == 2)
            // ^blk\.0\.attn_q\.weight$ → blk.0.attn_q.weight
            let name = parts[0].dropFirst().dropLast().replacingOccurrences(of: "\\.", with: ".")
            plan.append((name, try #require(typeBits[parts[1]])))
        }
        let weights = try #require(config.weights)
        // Bits 2, 3, 4, 8 and 16 have a GGUF type of their own, so the plan comes back exactly.
        #expect(plan.map(\.0) == weights.layers.map(\.tensor))
        #expect(plan.map(\.1) == weights.layers.map(\.bits))
    }

    /// Nasty strings and numbers in `metrics` and paths, for both syntaxes.
    static func randomConfig(seed: UInt64) throws -> KVScopeConfig {
        var g = SeededGenerator(seed: seed)
        let strings = ["yes", "no", "null", "~", "true", "1e5", "0x1F", "-", "- a", "a: b", "#x", "'q'", "\"dq\"", "tab\there",
                       "line\nbreak", " lead", "trail ", "", "ünïcødé ✓", "\\back", "{a}", "[1]", "&anchor", "*alias", "!tag", "%", "@", "`"]
        let doubles: [Double] = [0, -0.0, 0.1 + 0.2, 1e-320, 5e-324, 1.7976931348623157e308, -2.5e-7, 1e21, 123456789.125, 3.0]
        func scalar() -> ConfigValue {
            switch Int.random(in: 0..<5, using: &g) {
            case 0: return .string(strings.randomElement(using: &g) ?? "")
            case 1: return .double(doubles.randomElement(using: &g) ?? 0)
            case 2: return .int(Int.random(in: Int.min...Int.max, using: &g))
            case 3: return .bool(Bool.random(using: &g))
            default: return .null
            }
        }
        var config = try sampleConfig(layers: 4)
        config.model.path = strings.randomElement(using: &g).map { $0.isEmpty ? "m" : $0 } ?? "m"
        config.kvCache?.calibration?.text = "calib " + (strings.randomElement(using: &g) ?? "")
        var members: [(key: String, value: ConfigValue)] = []
        for (i, key) in strings.shuffled(using: &g).prefix(12).enumerated() {
            let value: ConfigValue = i % 3 == 0 ? .array((0..<3).map { _ in scalar() })
                : i % 3 == 1 ? .object([("inner " + key, scalar()), ("n", scalar())]) : scalar()
            members.append((key, value))
        }
        config.metrics = .object(members)
        return config
    }

    @Test(arguments: [("json", UInt64(1)), ("yaml", 2), ("json", 3), ("yaml", 4), ("yml", 5), ("yaml", 6)])
    func randomConfigsRoundTripExactly(ext: String, seed: UInt64) throws {
        let config = try Self.randomConfig(seed: seed)
        let path = try temporaryDirectory() + "/r." + ext
        try config.write(to: path, force: false)
        let back = try KVScopeConfig.load(path: path)
        #expect(back == config)
        // -0.0 == 0.0 for Double, so compare the written text too (the sign survives).
        #expect(try back.encoded(.json) == config.encoded(.json))
        #expect(try back.encoded(.yaml) == config.encoded(.yaml))
    }
}
