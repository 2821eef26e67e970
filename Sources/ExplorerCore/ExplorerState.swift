import Configuration
import Foundation
import KVCompression
import Quantization

/// The explorer's three views of a model.
public enum ExplorerMode: String, CaseIterable, Sendable {
    case kvCache = "KV cache"
    case weights = "Weights"
    case eval = "Eval"
}

/// Where the plotted spectra (and the starting ranks) come from.
public enum SpectrumSource: String, CaseIterable, Sendable {
    /// Singular values of W_k and W_v.
    case weights
    /// Singular values of K and V on calibration tokens.
    case kv
}

/// Rank and bits of one compressed branch as the user set them.
public struct BranchChoice: Sendable, Equatable, Hashable {
    /// r, 1…d_kv (d_kv: no low rank).
    public var rank: Int
    /// b: 2…8 or 16.
    public var bits: Int

    /// A branch choice.
    public init(rank: Int, bits: Int) {
        self.rank = rank
        self.bits = bits
    }
}

/// K and V choices of one layer.
public struct LayerChoice: Sendable, Equatable, Hashable {
    public var k: BranchChoice
    public var v: BranchChoice

    /// A layer's choices.
    public init(k: BranchChoice, v: BranchChoice) {
        self.k = k
        self.v = v
    }

    /// The choice of K or V.
    public subscript(kind: ProjectionKind) -> BranchChoice {
        get { kind == .k ? k : v }
        set { if kind == .k { k = newValue } else { v = newValue } }
    }
}

/// Bits, group and outliers of one weight matrix.
public struct WeightChoice: Sendable, Equatable, Hashable {
    /// 2…8, or 16 for fp16.
    public var bits: Int

    /// A weight choice.
    public init(bits: Int) { self.bits = bits }
}

/// Everything a config holds: what undo/redo restore and what export writes.
public struct ExplorerSettings: Sendable, Equatable, Hashable {
    /// Per-layer K/V choices.
    public var layers: [LayerChoice]
    /// w, the exact window.
    public var window: Int
    /// g of the KV branch (nil: one group per token).
    public var groupSize: Int?
    /// L, the context length for memory figures.
    public var contextLength: Int
    /// N, the batch for memory figures.
    public var batch: Int
    /// Per-tensor weight choices, in ``ExplorerResources/tensors`` order.
    public var weights: [WeightChoice]
    /// Weight quantization group (nil: one group per row).
    public var weightGroupSize: Int?
    /// Fraction of weights kept in fp16 as outliers.
    public var outlierFraction: Double

    /// Settings with every field given.
    public init(layers: [LayerChoice], window: Int, groupSize: Int?, contextLength: Int, batch: Int,
                weights: [WeightChoice], weightGroupSize: Int?, outlierFraction: Double) {
        self.layers = layers
        self.window = window
        self.groupSize = groupSize
        self.contextLength = contextLength
        self.batch = batch
        self.weights = weights
        self.weightGroupSize = weightGroupSize
        self.outlierFraction = outlierFraction
    }
}

/// What a text prompt is asking for.
public enum PromptPurpose: String, Sendable, Equatable {
    case budget, exportName, openConfig
}

/// A one-line text prompt.
public struct Prompt: Sendable, Equatable {
    public var purpose: PromptPurpose
    public var title: String
    public var text: String

    /// A prompt with an initial text.
    public init(purpose: PromptPurpose, title: String, text: String) {
        self.purpose = purpose
        self.title = title
        self.text = text
    }
}

/// A yes/no question.
public enum Confirmation: Sendable, Equatable {
    case quitWithoutExport
    case overwrite(path: String)

    /// The question shown.
    public var question: String {
        switch self {
        case .quitWithoutExport: return "Quit without exporting? (y/n)"
        case .overwrite(let path): return "\(path) exists. Overwrite? (y/n)"
        }
    }
}

/// What covers the main screen.
public enum Overlay: Sendable, Equatable {
    case help
    case prompt(Prompt)
    case confirm(Confirmation)
    /// The message log, scrolled back `scroll` rows from the newest.
    case log(scroll: Int)
}

/// The kinds of background job.
public enum JobKind: String, Sendable, Equatable {
    case errorModel = "error model"
    case kvTables = "quantized e_kv"
    case weightTables = "weight errors"
    case perplexity = "perplexity"
    case budget = "budget"
}

/// A background job as the screen shows it.
public struct JobStatus: Sendable, Equatable {
    public var id: Int
    public var kind: JobKind
    public var fraction: Double

    /// A running job.
    public init(id: Int, kind: JobKind, fraction: Double) {
        self.id = id
        self.kind = kind
        self.fraction = fraction
    }
}

/// A job the runtime should start; the body lives in ``ExplorerJobs``.
public enum JobRequest: Sendable, Equatable {
    case buildErrorModel(groupSize: Int?)
    case fillKVTables(bits: Int, groupSize: Int?)
    case fillWeightTables(choices: ErrorTableChoices)
    case perplexity(ExplorerSettings)
    case kvBudget(percent: Double, settings: ExplorerSettings)
    case weightBudget(bitsPerWeight: Double, settings: ExplorerSettings)

    /// The kind shown in the progress bar.
    public var kind: JobKind {
        switch self {
        case .buildErrorModel: return .errorModel
        case .fillKVTables: return .kvTables
        case .fillWeightTables: return .weightTables
        case .perplexity: return .perplexity
        case .kvBudget, .weightBudget: return .budget
        }
    }
}

/// What a finished job hands back to the UI thread.
public enum JobOutcome: @unchecked Sendable {
    case errorModel(ErrorModel)
    case tablesFilled
    case perplexity(compressed: Double, baseline: Double, tokens: Int)
    case allocation(ExplorerSettings, note: String)
}

/// The perplexity results shown in Eval mode.
public struct PerplexityFigures: Sendable, Equatable {
    public var compressed: Double
    public var baseline: Double
    public var tokens: Int
    /// The settings they were measured at.
    public var settings: ExplorerSettings
}

/// A side effect, as a value: the runtime performs it and may answer with an action.
public enum ExplorerEffect: Sendable, Equatable {
    case startJob(id: Int, JobRequest)
    case cancelJob(id: Int)
    /// Write the config to `path`; when it exists and `overwrite` is false the runtime answers
    /// with ``ExplorerAction/exportTargetExists(path:)``.
    case export(path: String, overwrite: Bool, ExplorerSettings)
    case openConfig(path: String)
    case quit
}

/// The whole state of the explorer. ``ExplorerCore/update(_:_:)`` is the only way it changes.
public struct ExplorerState: @unchecked Sendable {
    /// The model's precomputed data.
    public var resources: ExplorerResources
    /// The current settings.
    public var settings: ExplorerSettings
    /// The settings last exported (or opened); unexported changes ask before quitting.
    public var savedSettings: ExplorerSettings
    /// Undo and redo stacks.
    public var history: [ExplorerSettings] = []
    public var future: [ExplorerSettings] = []

    public var mode: ExplorerMode = .kvCache
    public var source: SpectrumSource = .weights
    /// Which projection the plot and the knobs act on.
    public var kind: ProjectionKind = .k
    /// Plot σ/σ₁ instead of σ.
    public var normalized = false
    /// The selected layer (KV and Eval modes) and tensor (Weights mode).
    public var selectedLayer = 0
    public var selectedTensor = 0
    /// The theme index into ``themeNames``.
    public var themeIndex = 0
    public var themeNames: [String]
    /// One warning line per theme whose file had problems (unknown keys, bad values), by theme name.
    public var themeWarnings: [String: String] = [:]
    /// Themes whose warning was already shown (each warns once).
    public var warnedThemes: Set<String> = []
    public var overlay: Overlay?
    /// The status line text; every line shown is also appended to ``log``.
    public var status: String { didSet { log.append(status, at: clock()) } }
    /// The last status lines and notes (the M key shows them).
    public var log = MessageLog()
    /// The clock the log's times come from.
    public var clock: @Sendable () -> Date = { Date() }
    /// Running jobs (the progress bar shows the first).
    public var jobs: [JobStatus] = []
    public var nextJobID = 1
    /// How the last job of each kind ended (done, cancelled, failed); ``phase(_:)`` reads it.
    public var jobEnds: [JobKind: JobPhase] = [:]
    /// The last request of each kind, so R can run a stopped budget again.
    public var lastRequests: [JobKind: JobRequest] = [:]
    /// The last perplexity results.
    public var perplexity: PerplexityFigures?
    /// The terminal size last seen.
    public var width = 120, height = 40
    /// The default export name.
    public var defaultExportName: String
    /// Set when the explorer should exit.
    public var finished = false

    /// The state of a freshly opened model: every layer at the 95%-energy rank of the weight
    /// spectra, 16 bits, and the window, group and context length of ``Configuration/KVDefaults``,
    /// the defaults of `kvscope tune --kv-budget`, so `b` allocates as tune does.
    public init(resources: ExplorerResources, themeNames: [String] = ["default", "light", "high-contrast", "mono"],
                status: String = "") {
        self.resources = resources
        let layers = ExplorerState.startingLayers(resources.weightSpectra, kvSize: resources.info.kvSize)
        let s = ExplorerSettings(
            layers: layers, window: KVDefaults.window, groupSize: KVDefaults.groupSize,
            contextLength: KVDefaults.contextLength(modelContext: resources.info.contextLength), batch: 1,
            weights: Array(repeating: WeightChoice(bits: 16), count: resources.tensors.count),
            weightGroupSize: 128, outlierFraction: 0)
        settings = s
        savedSettings = s
        self.themeNames = themeNames
        self.status = status
        log.append(status, at: clock())
        let base = resources.info.name.split(separator: ".").first.map(String.init) ?? "model"
        defaultExportName = "\(base).kvscope.json"
    }

    /// Every layer at the 95%-energy rank of `spectra`, 16 bits.
    public static func startingLayers(_ spectra: [LayerSpectra], kvSize: Int) -> [LayerChoice] {
        spectra.map { l in
            LayerChoice(k: BranchChoice(rank: max(1, min(kvSize, l.k.energyRank(0.95))), bits: 16),
                        v: BranchChoice(rank: max(1, min(kvSize, l.v.energyRank(0.95))), bits: 16))
        }
    }

    /// Whether the settings differ from the last export.
    public var hasUnexportedChanges: Bool { settings != savedSettings }

    /// The selected layer's choice of the current K/V.
    public var currentBranch: BranchChoice {
        settings.layers.indices.contains(selectedLayer) ? settings.layers[selectedLayer][kind] : BranchChoice(rank: 0, bits: 16)
    }

    /// Whether the current source's spectra exist.
    public var sourceAvailable: Bool { resources.spectra(source) != nil }

    /// The theme name in use.
    public var themeName: String { themeNames.indices.contains(themeIndex) ? themeNames[themeIndex] : "default" }
}
