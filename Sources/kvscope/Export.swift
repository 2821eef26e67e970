import ArgumentParser
import Configuration
import ExplorerCore
import Foundation
import KVCompression
import LinearAlgebra
import TensorFiles

/// `kvscope export CONFIG`: the config's plan in formats other tools read (DESIGN.md §5, §6).
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a config: low-rank factors (safetensors), llama-quantize arguments, Palu ranks.",
        discussion: HelpText.flow("""
            The model and calibration text come from the config (paths as recorded, relative to the
            working directory or else to the config's directory); their SHA-256 must match.
            --factors writes model.layers.N.self_attn.{k,v}_proj.lora_{A,B}.weight in fp16, HF row
            order, with the config JSON in the safetensors metadata key "kvscope_config".
            --llama-quantize-args prints --tensor-type overrides for llama.cpp's llama-quantize.
            --palu writes DIR/head_wise_ranks.json. Files are written atomically and never replaced
            without --force. See docs/config.md.
            """))

    @Argument(help: "The config file (.json, .yaml or .yml).") var config: String
    @Option(help: "Write the K/V low-rank factors to this .safetensors file.") var factors: String?
    @Flag(help: "Print llama-quantize --tensor-type arguments for the weight plan.") var llamaQuantizeArgs = false
    @Option(help: "Write Palu-style head_wise_ranks.json into this directory.") var palu: String?
    @Flag(help: "Overwrite existing output files.") var force = false
    @Flag(help: "Use the model even if its SHA-256 differs from the config's.") var allowModelMismatch = false

    func validate() throws {
        if factors == nil && !llamaQuantizeArgs && palu == nil {
            throw ValidationError("give --factors, --llama-quantize-args or --palu")
        }
    }

    /// A path recorded in a config: as given when it exists, else relative to the config's directory.
    static func resolve(_ path: String, configPath: String) -> String {
        KVScopeConfig.resolvePath(path, configPath: configPath)
    }

    func run() throws {
        try CLIError.reporting {
            let cfg = try KVScopeConfig.load(path: config)
            let paluPath = palu.map { ($0.hasSuffix("/") ? $0 : $0 + "/") + "head_wise_ranks.json" }
            if let factors { try refuseOverwrite(factors, force: force) }
            if let paluPath { try refuseOverwrite(paluPath, force: force) }

            var session: ModelSession? = nil
            let modelPath = Self.resolve(cfg.model.path, configPath: config)
            if factors != nil || llamaQuantizeArgs {
                let s = try ModelSession(path: modelPath)
                do {
                    try cfg.validate(against: ModelDescription(opened: s.opened, path: modelPath))
                    try cfg.checkModelHash(try ModelHashCache.sha256(ofFile: modelPath), allowMismatch: allowModelMismatch)
                } catch let error as ConfigError {
                    throw ConfigError(path: config, entry: error.entry, error.message + " (model \(modelPath))")
                }
                session = s
            }
            if let factors, let session {
                try writeFactors(cfg, session: session, modelPath: modelPath, to: factors)
                FileHandle.standardError.write(Data("wrote \(factors)\n".utf8))
            }
            if llamaQuantizeArgs {
                let (arguments, notes) = try ConfigExport.llamaQuantizeArguments(config: cfg)
                for note in notes { FileHandle.standardError.write(Data("kvscope: \(note)\n".utf8)) }
                var lines: [String] = []
                var i = 0
                while i + 1 < arguments.count {
                    lines.append("\(arguments[i]) \(arguments[i + 1])")
                    i += 2
                }
                print(lines.joined(separator: " \\\n"))
            }
            if let palu, let paluPath {
                try FileManager.default.createDirectory(atPath: palu, withIntermediateDirectories: true)
                try writeText(try ConfigExport.paluDocument(config: cfg).prettyJSON, to: paluPath, force: force)
                FileHandle.standardError.write(Data("wrote \(paluPath)\n".utf8))
            }
        }
    }

    func writeFactors(_ cfg: KVScopeConfig, session: ModelSession, modelPath: String, to path: String) throws {
        guard let kv = cfg.kvCache else { throw ConfigError(path: config, entry: "kv_cache", "missing: there are no factors to export") }
        var statistics: CalibrationStatistics? = nil
        if kv.basis != .weights {
            guard let reference = kv.calibration else {
                throw ConfigError(path: config, entry: "kv_cache.calibration", "missing (needed by the \(kv.basis.rawValue) basis)")
            }
            // The statistics the config records (its bundle's, or a capture of its text), as eval --config uses.
            let progress = ProgressReporter("export")
            defer { progress.finish() }
            progress.begin("calibration", unit: "layers")
            statistics = try session.calibration(recordedIn: reference, configPath: config, modelSHA256: cfg.model.sha256,
                                                 progress: { progress.update($0, $1) })
        }
        let writer = try ConfigExport.factorsFile(config: cfg) { layer, kind, rank in
            let w = try session.projection(layer: layer, kind: kind)
            let basis: ProjectionBasis
            switch kv.basis {
            case .weights: basis = try ProjectionBasis.weights(w)
            case .activations:
                guard let s = statistics, s.layers.indices.contains(layer) else { throw CommandError("no calibration for layer \(layer)") }
                basis = try ProjectionBasis.activations(keyGram: s.layers[layer].gram(kind))
            case .asvd:
                guard let s = statistics, s.layers.indices.contains(layer), let x = s.layers[layer].attentionInput else {
                    throw CommandError("no calibration for layer \(layer)")
                }
                basis = try ProjectionBasis.asvd(weight: w, inputMeanAbs: x.meanAbs)
            case .fitted:
                throw ConfigError(path: config, entry: "kv_cache.basis", "fitted factors are trained; export supports activations, weights and asvd")
            }
            return try basis.factors(rank: rank, weight: w)
        }
        try writer.write(to: path, overwrite: force)
    }
}
