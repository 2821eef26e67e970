import Foundation
import KVCompression
import TensorFiles

// MARK: - Writing

extension KVScopeConfig {
    /// The document tree, keys in schema order (DESIGN.md §6).
    public var document: ConfigValue {
        var top: [(key: String, value: ConfigValue)] = [
            ("format", .string(Self.formatName)),
            ("version", .int(Self.formatVersion)),
            ("model", .object([
                ("path", .string(model.path)),
                ("architecture", .string(model.architecture)),
                ("n_layers", .int(model.nLayers)),
                ("hidden_size", .int(model.hiddenSize)),
                ("d_kv", .int(model.dKV)),
                ("sha256", .string(model.sha256)),
            ] + (model.slidingWindow.map { w in
                [("sliding_window", ConfigValue.int(w)), ("sliding_layers", .array(model.slidingLayers.map { .int($0) }))]
            } ?? []))),
        ]
        if let kv = kvCache {
            var section: [(key: String, value: ConfigValue)] = [
                ("basis", .string(kv.basis.rawValue)),
                ("window", .int(kv.window)),
                ("group_size", kv.groupSize.map(ConfigValue.int) ?? .null),
                ("context_length", .int(kv.contextLength)),
            ]
            // DESIGN.md §6 lists every key; a plan without calibration text (the `weights` basis) says so with null.
            section.append(("calibration", kv.calibration.map { c in
                var entry: [(key: String, value: ConfigValue)] = [
                    ("text", .string(c.text)), ("sha256", .string(c.sha256)), ("n_tokens", .int(c.nTokens)),
                ]
                if let source = c.source { entry.append(("source", .string(source.rawValue))) }
                if let bundle = c.bundle { entry.append(("bundle", .string(bundle))) }
                if let samples = c.samples { entry.append(("samples", .int(samples))) }
                return .object(entry)
            } ?? .null))
            section.append(("layers", .array(kv.layers.map { l in
                .object([
                    ("layer", .int(l.layer)),
                    ("k", .object([("rank", .int(l.k.rank)), ("bits", .int(l.k.bits))])),
                    ("v", .object([("rank", .int(l.v.rank)), ("bits", .int(l.v.bits))])),
                ])
            })))
            section.append(("memory", .object([
                ("baseline_bytes", .double(kv.memory.baselineBytes)),
                ("compressed_bytes", .double(kv.memory.compressedBytes)),
                ("ratio", .double(kv.memory.ratio)),
                ("nominal_ratio", .double(kv.memory.nominalRatio)),
            ])))
            top.append(("kv_cache", .object(section)))
        }
        if let w = weights {
            top.append(("weights", .object([
                ("group_size", w.groupSize.map(ConfigValue.int) ?? .null),
                ("layers", .array(w.layers.map { l in
                    .object([("tensor", .string(l.tensor)), ("bits", .int(l.bits)),
                             ("outlier_fraction", .double(l.outlierFraction))])
                })),
                ("memory", .object([
                    ("baseline_bytes", .double(w.memory.baselineBytes)),
                    ("compressed_bytes", .double(w.memory.compressedBytes)),
                    ("bits_per_weight", .double(w.memory.bitsPerWeight)),
                    ("ratio", .double(w.memory.ratio)),
                ])),
            ])))
        }
        top.append(("metrics", metrics))
        return .object(top)
    }

    /// The file text in `format`.
    /// - Throws: ``ConfigError`` when the YAML emitter fails.
    public func encoded(_ format: ConfigFormat) throws -> String {
        switch format {
        case .json: return document.prettyJSON
        case .yaml: return try document.yaml()
        }
    }

    /// Writes the config atomically (temporary file + rename), JSON or YAML by the name's extension.
    /// - Parameters:
    ///   - path: the destination.
    ///   - force: replace an existing file; without it an existing file is an error.
    /// - Throws: ``ConfigError`` when the file exists and `force` is false, or the config is invalid;
    ///   ``TensorFiles/TensorFileError`` on I/O errors.
    public func write(to path: String, force: Bool) throws {
        try checked(path: path)
        try writeText(try encoded(ConfigFormat(path: path)), to: path, force: force)
    }
}

/// Writes text atomically; an existing file is replaced only with `force`.
/// - Throws: ``ConfigError`` for an existing file without `force`; ``TensorFiles/TensorFileError`` on I/O errors.
public func writeText(_ text: String, to path: String, force: Bool) throws {
    try refuseOverwrite(path, force: force)
    let writer = try AtomicFileWriter(path: path, overwrite: force)
    try writer.write(Array(text.utf8))
    do {
        try writer.commit()
    } catch let error as TensorFileError where error.message.hasPrefix("refusing") {
        throw ConfigError(path: path, "already exists; pass --force to overwrite it")
    }
}

/// Throws unless `path` is free or `force` is given.
/// - Throws: ``ConfigError`` naming the file.
public func refuseOverwrite(_ path: String, force: Bool) throws {
    if !force, FileManager.default.fileExists(atPath: path) {
        throw ConfigError(path: path, "already exists; pass --force to overwrite it")
    }
}

// MARK: - Reading

extension KVScopeConfig {
    /// Reads and checks a config file (JSON, or YAML for `.yaml`/`.yml`). Every entry is checked
    /// against the schema and against the config's own model section (ranks ≤ d_kv, layers
    /// 0…n_layers−1 each exactly once, memory equal to its recomputation); use
    /// ``validate(against:)`` to check it against the model file too.
    /// - Throws: ``ConfigError`` naming the file and the exact entry; ``TensorFiles/TensorFileError`` when unreadable.
    public static func load(path: String) throws -> KVScopeConfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigError(path: path, "cannot read: \((error as NSError).localizedDescription)")
        }
        return try decode(Array(data), format: ConfigFormat(path: path), path: path)
    }

    /// Parses and checks config text.
    /// - Throws: ``ConfigError`` naming `path` and the exact entry.
    public static func decode(_ bytes: [UInt8], format: ConfigFormat, path: String = "") throws -> KVScopeConfig {
        let tree: ConfigValue
        switch format {
        case .json: tree = try ConfigValue.parseJSON(bytes, path: path)
        case .yaml:
            guard let text = String(bytes: bytes, encoding: .utf8) else { throw ConfigError(path: path, "not UTF-8 text") }
            tree = try ConfigValue.parseYAML(text, path: path)
        }
        do {
            let config = try ConfigReader().config(tree)
            try config.checked(path: path)
            return config
        } catch let error as ConfigError {
            throw error.at(path: path)
        }
    }

    /// Checks the config against its own model section: sections present, every value in range,
    /// layers unique and complete, memory equal to its recomputation.
    /// - Throws: ``ConfigError`` naming the entry.
    public func checked(path: String = "") throws {
        do {
            try checkInternal()
        } catch let error as ConfigError {
            throw error.at(path: path)
        }
    }
}

/// Turns a document tree into a ``KVScopeConfig``, naming the entry of every error.
struct ConfigReader {
    typealias Members = [(key: String, value: ConfigValue)]

    func object(_ v: ConfigValue, _ entry: String, keys: [String], required: [String]) throws -> Members {
        guard case .object(let members) = v else { throw ConfigError(entry: entry, "expected an object, found \(v.kindName)") }
        for m in members where !keys.contains(m.key) {
            throw ConfigError(entry: join(entry, m.key), "unknown key (expected one of \(keys.joined(separator: ", ")))")
        }
        for k in required where !members.contains(where: { $0.key == k }) {
            throw ConfigError(entry: join(entry, k), "missing")
        }
        return members
    }

    func join(_ entry: String, _ key: String) -> String { entry.isEmpty ? key : "\(entry).\(key)" }

    func member(_ m: Members, _ key: String) -> ConfigValue? { m.first { $0.key == key }?.value }

    func int(_ m: Members, _ entry: String, _ key: String) throws -> Int {
        let e = join(entry, key)
        guard let v = member(m, key) else { throw ConfigError(entry: e, "missing") }
        guard case .int(let i) = v else { throw ConfigError(entry: e, "expected an integer, found \(describe(v))") }
        return i
    }

    func optionalInt(_ m: Members, _ entry: String, _ key: String) throws -> Int? {
        guard let v = member(m, key), v != .null else { return nil }
        return try int(m, entry, key)
    }

    func double(_ m: Members, _ entry: String, _ key: String) throws -> Double {
        let e = join(entry, key)
        guard let v = member(m, key) else { throw ConfigError(entry: e, "missing") }
        guard let d = v.number, d.isFinite else { throw ConfigError(entry: e, "expected a finite number, found \(describe(v))") }
        return d
    }

    func string(_ m: Members, _ entry: String, _ key: String) throws -> String {
        let e = join(entry, key)
        guard let v = member(m, key) else { throw ConfigError(entry: e, "missing") }
        guard case .string(let s) = v else { throw ConfigError(entry: e, "expected a string, found \(describe(v))") }
        return s
    }

    func describe(_ v: ConfigValue) -> String {
        switch v {
        case .null, .bool, .int, .double, .string: return "\(v.kindName) \(v.compactJSON)"
        default: return v.kindName
        }
    }

    func config(_ tree: ConfigValue) throws -> KVScopeConfig {
        let top = try object(tree, "", keys: ["format", "version", "model", "kv_cache", "weights", "metrics"],
                             required: ["format", "version", "model"])
        let format = try string(top, "", "format")
        guard format == KVScopeConfig.formatName else {
            throw ConfigError(entry: "format", "expected \"\(KVScopeConfig.formatName)\", found \"\(format)\"")
        }
        let version = try int(top, "", "version")
        guard version == KVScopeConfig.formatVersion else {
            throw ConfigError(entry: "version", "\(version) is not supported (this kvscope reads version \(KVScopeConfig.formatVersion))")
        }
        let model = try modelReference(member(top, "model") ?? .null)
        let kv = try member(top, "kv_cache").flatMap { $0 == .null ? nil : try kvSection($0) }
        let weights = try member(top, "weights").flatMap { $0 == .null ? nil : try weightsSection($0) }
        let metrics = member(top, "metrics") ?? .object([])
        guard case .object = metrics else { throw ConfigError(entry: "metrics", "expected an object, found \(metrics.kindName)") }
        return KVScopeConfig(model: model, kvCache: kv, weights: weights, metrics: metrics)
    }

    func modelReference(_ v: ConfigValue) throws -> ModelReference {
        let e = "model"
        let m = try object(v, e, keys: ["path", "architecture", "n_layers", "hidden_size", "d_kv", "sha256",
                                        "sliding_window", "sliding_layers"],
                           required: ["path", "architecture", "n_layers", "hidden_size", "d_kv", "sha256"])
        let window = try optionalInt(m, e, "sliding_window")
        var layers: [Int] = []
        if let list = member(m, "sliding_layers") {
            guard window != nil else { throw ConfigError(entry: "model.sliding_layers", "given without model.sliding_window") }
            guard case .array(let items) = list else {
                throw ConfigError(entry: "model.sliding_layers", "expected an array, found \(list.kindName)")
            }
            for (i, item) in items.enumerated() {
                guard case .int(let layer) = item, layer >= 0 else {
                    throw ConfigError(entry: "model.sliding_layers[\(i)]", "expected a layer index ≥ 0, found \(describe(item))")
                }
                guard !layers.contains(layer) else { throw ConfigError(entry: "model.sliding_layers[\(i)]", "layer \(layer) is listed twice") }
                layers.append(layer)
            }
        }
        if let window, window < 1 { throw ConfigError(entry: "model.sliding_window", "must be positive, found \(window)") }
        let n = try int(m, e, "n_layers")
        if let bad = layers.first(where: { $0 >= n }) {
            throw ConfigError(entry: "model.sliding_layers", "layer \(bad) is beyond the model's \(n) layers")
        }
        return ModelReference(path: try string(m, e, "path"), architecture: try string(m, e, "architecture"),
                              nLayers: n, hiddenSize: try int(m, e, "hidden_size"),
                              dKV: try int(m, e, "d_kv"), sha256: try string(m, e, "sha256"),
                              slidingWindow: window, slidingLayers: layers)
    }

    func kvSection(_ v: ConfigValue) throws -> KVCacheSection {
        let e = "kv_cache"
        let m = try object(v, e, keys: ["basis", "window", "group_size", "context_length", "calibration", "layers", "memory"],
                           required: ["basis", "window", "context_length", "layers", "memory"])
        let basisName = try string(m, e, "basis")
        guard let basis = BasisKind(rawValue: basisName) else {
            throw ConfigError(entry: "kv_cache.basis", "unknown basis \"\(basisName)\" (expected \(BasisKind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        var calibration: CalibrationReference? = nil
        if let c = member(m, "calibration"), c != .null {
            let ce = "kv_cache.calibration"
            let cm = try object(c, ce, keys: ["text", "sha256", "n_tokens", "source", "bundle", "samples"],
                                required: ["text", "sha256", "n_tokens"])
            // source, bundle and samples came after the first v1 files: all three are optional.
            var source: CalibrationReference.Source?
            if member(cm, "source") != nil {
                let name = try string(cm, ce, "source")
                guard let s = CalibrationReference.Source(rawValue: name) else {
                    throw ConfigError(entry: "\(ce).source", "unknown source \"\(name)\" (expected \(CalibrationReference.Source.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                source = s
            }
            var bundle: String?
            if let b = member(cm, "bundle"), b != .null { bundle = try string(cm, ce, "bundle") }
            calibration = CalibrationReference(text: try string(cm, ce, "text"), sha256: try string(cm, ce, "sha256"),
                                               nTokens: try int(cm, ce, "n_tokens"), source: source, bundle: bundle,
                                               samples: try optionalInt(cm, ce, "samples"))
        }
        guard case .array(let items) = member(m, "layers") ?? .null else {
            throw ConfigError(entry: "kv_cache.layers", "expected an array, found \((member(m, "layers") ?? .null).kindName)")
        }
        var layers: [KVLayerEntry] = []
        for (i, item) in items.enumerated() {
            let le = "kv_cache.layers[\(i)]"
            let lm = try object(item, le, keys: ["layer", "k", "v"], required: ["layer", "k", "v"])
            func branch(_ key: String) throws -> BranchSetting {
                let be = "\(le).\(key)"
                let bm = try object(member(lm, key) ?? .null, be, keys: ["rank", "bits"], required: ["rank", "bits"])
                let rank = try int(bm, be, "rank"), bits = try int(bm, be, "bits")
                guard bits == 16 || (2...8).contains(bits) else { throw ConfigError(entry: "\(be).bits", "\(bits) is not in 2…8 or 16") }
                guard rank >= 1 else { throw ConfigError(entry: "\(be).rank", "\(rank) is below 1") }
                do {
                    return try BranchSetting(rank: rank, bits: bits)
                } catch {
                    throw ConfigError(entry: be, "\(error)")
                }
            }
            layers.append(KVLayerEntry(layer: try int(lm, le, "layer"), k: try branch("k"), v: try branch("v")))
        }
        let me = "kv_cache.memory"
        let mm = try object(member(m, "memory") ?? .null, me, keys: ["baseline_bytes", "compressed_bytes", "ratio", "nominal_ratio"],
                            required: ["baseline_bytes", "compressed_bytes", "ratio", "nominal_ratio"])
        let memory = KVMemory(baselineBytes: try double(mm, me, "baseline_bytes"), compressedBytes: try double(mm, me, "compressed_bytes"),
                              ratio: try double(mm, me, "ratio"), nominalRatio: try double(mm, me, "nominal_ratio"))
        return KVCacheSection(basis: basis, window: try int(m, e, "window"), groupSize: try optionalInt(m, e, "group_size"),
                              contextLength: try int(m, e, "context_length"), calibration: calibration,
                              layers: layers, memory: memory)
    }

    func weightsSection(_ v: ConfigValue) throws -> WeightsSection {
        let e = "weights"
        let m = try object(v, e, keys: ["group_size", "layers", "memory"], required: ["layers", "memory"])
        guard case .array(let items) = member(m, "layers") ?? .null else {
            throw ConfigError(entry: "weights.layers", "expected an array, found \((member(m, "layers") ?? .null).kindName)")
        }
        var layers: [WeightLayerEntry] = []
        for (i, item) in items.enumerated() {
            let le = "weights.layers[\(i)]"
            let lm = try object(item, le, keys: ["tensor", "bits", "outlier_fraction"], required: ["tensor", "bits"])
            let bits = try int(lm, le, "bits")
            guard bits == 16 || (2...8).contains(bits) else { throw ConfigError(entry: "\(le).bits", "\(bits) is not in 2…8 or 16") }
            let p = member(lm, "outlier_fraction") == nil ? 0 : try double(lm, le, "outlier_fraction")
            guard p >= 0, p < 1 else { throw ConfigError(entry: "\(le).outlier_fraction", "\(p) is not in [0, 1)") }
            layers.append(WeightLayerEntry(tensor: try string(lm, le, "tensor"), bits: bits, outlierFraction: p))
        }
        let me = "weights.memory"
        let mm = try object(member(m, "memory") ?? .null, me, keys: ["baseline_bytes", "compressed_bytes", "bits_per_weight", "ratio"],
                            required: ["baseline_bytes", "compressed_bytes", "bits_per_weight", "ratio"])
        let memory = WeightMemory(baselineBytes: try double(mm, me, "baseline_bytes"), compressedBytes: try double(mm, me, "compressed_bytes"),
                                  bitsPerWeight: try double(mm, me, "bits_per_weight"), ratio: try double(mm, me, "ratio"))
        return WeightsSection(groupSize: try optionalInt(m, e, "group_size"), layers: layers, memory: memory)
    }
}
