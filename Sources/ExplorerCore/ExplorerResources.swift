import Foundation
import Inference
import KVCompression
import LinearAlgebra
import Quantization
import TensorFiles

/// What the explorer shows about the model itself (fixed for a session).
public struct ExplorerModelInfo: Sendable, Equatable {
    /// The file name shown in the header.
    public var name: String
    /// The path as given.
    public var path: String
    /// The architecture named by the file (llama, bert, …).
    public var architecture: String
    /// Number of layers.
    public var layerCount: Int
    /// d, the hidden size.
    public var hiddenSize: Int
    /// d_kv = n_kv_heads × head_dim.
    public var kvSize: Int
    /// The model's context length, when the file states it.
    public var contextLength: Int?
    /// Whether the file holds a whole model that the forward pass can run (needed for perplexity).
    public var canRunInference: Bool
    /// Sliding-window layers (Gemma 3): their cache holds at most `slidingWindow` positions.
    public var slidingWindow: Int?
    public var slidingLayers: Set<Int> = []
    /// Whether every layer weight matrix can be read, so weight error tables can be computed (a
    /// bundle without its source model only offers its shipped tables).
    public var canComputeWeightTables: Bool

    /// A description of a model.
    public init(name: String, path: String, architecture: String, layerCount: Int, hiddenSize: Int, kvSize: Int,
                contextLength: Int?, canRunInference: Bool, canComputeWeightTables: Bool = true) {
        self.name = name
        self.path = path
        self.architecture = architecture
        self.layerCount = layerCount
        self.hiddenSize = hiddenSize
        self.kvSize = kvSize
        self.contextLength = contextLength
        self.canRunInference = canRunInference
        self.canComputeWeightTables = canComputeWeightTables
    }
}

/// One weight matrix listed in Weights mode.
public struct WeightTensor: Sendable, Equatable {
    /// Its name in the file (e.g. `blk.0.attn_q.weight`).
    public var name: String
    /// Its layer.
    public var layer: Int
    /// q, k, v, o, gate, up or down.
    public var role: String
    /// Rows and columns in [out, in] order.
    public var rows: Int, cols: Int

    /// A weight matrix entry.
    public init(name: String, layer: Int, role: String, rows: Int, cols: Int) {
        self.name = name
        self.layer = layer
        self.role = role
        self.rows = rows
        self.cols = cols
    }

    /// n, the number of weights.
    public var count: Int { rows * cols }

    /// The roles of Weights mode, in table order within a layer.
    public static let roles: [TensorRole] = [.q, .k, .v, .o, .gate, .up, .down]

    /// The matrix a llama GGUF tensor name (`blk.N.attn_q.weight`, …) denotes, with its shape; nil for
    /// other names. Used for a bundle's shipped tables when the source model is absent.
    public static func fromGGUFName(_ name: String, rows: Int, cols: Int) -> WeightTensor? {
        let parts = name.split(separator: ".")
        guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]), parts[3] == "weight" else { return nil }
        let roles: [Substring: TensorRole] = ["attn_q": .q, "attn_k": .k, "attn_v": .v, "attn_output": .o,
                                              "ffn_gate": .gate, "ffn_up": .up, "ffn_down": .down]
        guard let role = roles[parts[2]] else { return nil }
        return WeightTensor(name: name, layer: layer, role: role.rawValue, rows: rows, cols: cols)
    }
}

/// Where the calibration-based kv spectra come from. ``ModelSession`` gains calibration statistics
/// in another branch; until then a session offers none, and the explorer shows "—" for e_kv.
public protocol CalibrationProviding {
    /// The calibration statistics for this model, or nil when none are available.
    func explorerCalibration() throws -> CalibrationStatistics?
}

/// The precomputed data every frame reads: spectra, error curves and (filled in the background)
/// quantization error tables. Lookups are O(1); nothing here is computed while drawing.
public struct ExplorerResources: @unchecked Sendable {
    /// The model.
    public var info: ExplorerModelInfo
    /// Singular values of W_k and W_v per layer.
    public var weightSpectra: [LayerSpectra]
    /// Singular values of K and V on calibration tokens, when calibration statistics exist.
    public var kvSpectra: [LayerSpectra]?
    /// e_w and e_kv lookups for the current basis (nil while it is being built).
    public var errorModel: ErrorModel?
    /// The weight matrices of Weights mode.
    public var tensors: [WeightTensor]
    /// Quantization error tables per tensor, filled in the background (shared, thread-safe).
    public let weightTables: ErrorTableCache
    /// The grid of the tables that came with the model (a bundle's `weight_errors.json`), if any.
    public var weightChoices: ErrorTableChoices?

    /// Resources with every field given.
    public init(info: ExplorerModelInfo, weightSpectra: [LayerSpectra], kvSpectra: [LayerSpectra]?,
                errorModel: ErrorModel?, tensors: [WeightTensor],
                weightTables: ErrorTableCache = ErrorTableCache(),
                weightChoices: ErrorTableChoices? = nil) {
        self.info = info
        self.weightSpectra = weightSpectra
        self.kvSpectra = kvSpectra
        self.errorModel = errorModel
        self.tensors = tensors
        self.weightTables = weightTables
        self.weightChoices = weightChoices
    }

    /// The weight-quantization grid: bits 2…8 × groups 32, 64, 128, per row; no outliers, 1% outliers.
    public static let defaultWeightChoices = ErrorTableChoices(bits: Array(2...8), groupSizes: [32, 64, 128, nil],
                                                               outlierFractions: [0, 0.01], mode: .asymmetric)

    /// The error-table entry of `tensor` at `bits`, group and outliers, with ‖W‖²_F: from the shipped
    /// tables when their grid has it, else from the tables computed in the session
    /// (``Explorer/weightChoices(_:resources:)``).
    public func weightEntry(tensor: WeightTensor, bits: Int, groupSize: Int?, outlierFraction: Double,
                            sessionChoices: ErrorTableChoices) -> (entry: ErrorTable.Entry, weightNormSquared: Double)? {
        for choices in [weightChoices, sessionChoices].compactMap({ $0 }) {
            if let table = weightTables.table(named: tensor.name, choices: choices),
               let e = table.entry(bits: bits, groupSize: groupSize, outlierFraction: outlierFraction) {
                return (e, table.weightNormSquared)
            }
        }
        return nil
    }

    /// The spectra of `source`, or nil when that source is not available.
    public func spectra(_ source: SpectrumSource) -> [LayerSpectra]? {
        source == .weights ? weightSpectra : kvSpectra
    }

    /// Opens the data of `session`: weight spectra (from the on-disk cache when present), the tensor
    /// list, and kv spectra when `calibration` is given. The error model is built separately
    /// (``buildErrorModel(session:calibration:progress:cancellation:)``) so the screen can open first.
    /// - Throws: file errors, or ``KVCompressionError`` from the spectra.
    public static func load(session: ModelSession, calibration: CalibrationStatistics?,
                            progress: ProgressHandler? = nil) throws -> ExplorerResources {
        let hp = session.hyperparameters
        let spectra = try session.weightSpectra(progress: progress)
        var kv: [LayerSpectra]?
        if let calibration {
            kv = try calibration.layers.map { l in
                LayerSpectra(layer: l.layer, k: try Spectrum(gram: l.keyGram, rows: calibration.tokenCount),
                             v: try Spectrum(gram: l.valueGram, rows: calibration.tokenCount))
            }
        }
        // Weights mode lists every layer matrix of the full model; a bundle without it lists the
        // matrices of its shipped tables.
        let full = try session.weightModel()
        var tensors: [WeightTensor] = []
        if let catalog = full?.catalog {
            for layer in 0..<hp.nLayers {
                for role in WeightTensor.roles {
                    guard let e = catalog.entry(layer: layer, role: role), e.shape.count == 2 else { continue }
                    // Catalog shapes are already [out, in] (DESIGN.md §4).
                    tensors.append(WeightTensor(name: e.name, layer: layer, role: role.rawValue, rows: e.shape[0], cols: e.shape[1]))
                }
            }
        }
        let cache = ErrorTableCache()
        var shipped: ErrorTableChoices?
        if let tables = try session.bundledWeightTables() {
            if let first = tables.first { shipped = first.choices }
            for t in tables where t.choices == shipped && t.choices.mode == .asymmetric { cache.insert(t) }
            if full == nil {
                let order = Dictionary(uniqueKeysWithValues: WeightTensor.roles.enumerated().map { ($1.rawValue, $0) })
                tensors = tables.compactMap { WeightTensor.fromGGUFName($0.name, rows: $0.rows, cols: $0.cols) }
                    .sorted { ($0.layer, order[$0.role] ?? 0) < ($1.layer, order[$1.role] ?? 0) }
            }
        }
        let fullPath = session.fullModelPath
        var info = ExplorerModelInfo(
            name: URL(fileURLWithPath: session.path).lastPathComponent, path: session.path,
            architecture: hp.architecture, layerCount: hp.nLayers, hiddenSize: hp.hiddenSize, kvSize: hp.kvDim,
            contextLength: hp.contextLength,
            canRunInference: full.map { ModelLoader.architecture(of: $0) != nil } == true && fullPath != nil
                && full?.catalog.entry(layer: nil, role: .embed) != nil,
            canComputeWeightTables: full != nil)
        info.slidingWindow = hp.slidingWindow
        info.slidingLayers = hp.slidingLayers
        return ExplorerResources(info: info, weightSpectra: spectra, kvSpectra: kv, errorModel: nil, tensors: tensors,
                                 weightTables: cache, weightChoices: shipped)
    }

    /// Builds the error model: the `activations` basis when calibration statistics exist (e_w and
    /// e_kv), else the `weights` basis (e_w only). Runs SVDs: call it off the UI thread.
    /// - Throws: file and LinearAlgebra errors, ``KVCompressionError/cancelled``.
    public static func buildErrorModel(session: ModelSession, calibration: CalibrationStatistics?, groupSize: Int?,
                                       progress: ProgressHandler? = nil,
                                       cancellation: CancellationFlag? = nil) throws -> ErrorModel {
        var entries: [ErrorModelEntry] = []
        let kind: BasisKind = calibration == nil ? .weights : .activations
        for layer in 0..<session.layerCount {
            try cancellation?.check()
            for k in ProjectionKind.allCases {
                let w = try session.projection(layer: layer, kind: k)
                if let cal = calibration, let lc = cal.layers.first(where: { $0.layer == layer }) {
                    let gram = lc.gram(k)
                    entries.append(ErrorModelEntry(layer: layer, kind: k, basis: try .activations(keyGram: gram),
                                                   weight: w, gram: gram, samples: lc.samples(k)))
                } else {
                    entries.append(ErrorModelEntry(layer: layer, kind: k, basis: try .weights(w), weight: w,
                                                   gram: nil, samples: nil))
                }
            }
            progress?(layer + 1, session.layerCount + 1)
        }
        let model = try ErrorModel(basisKind: kind, entries: entries, defaultGroupSize: groupSize, cancellation: cancellation)
        progress?(session.layerCount + 1, session.layerCount + 1)
        return model
    }
}

extension CancellationFlag {
    func check() throws { if isCancelled { throw KVCompressionError.cancelled } }
}
