/// The KV-cache defaults that `kvscope tune --kv-budget` and the explorer (its starting settings,
/// and so its `b` budget) share, so both allocate under the same memory model (docs/config.md).
public enum KVDefaults {
    /// w, tokens kept exact.
    public static let window = 32
    /// g along the r stored features (nil would be one group per token).
    public static let groupSize: Int? = 32
    /// L of the memory figures and budgets, unless the model's own context is shorter.
    public static let contextLength = 4096
    /// Bits the compressed branch may take in a budget allocation.
    public static let bitsChoices = [2, 3, 4, 8, 16]
    /// The smallest rank a budget allocation tries.
    public static let minRank = 1
    /// Ranks above 8 are tried in steps of this (plus d_kv).
    public static let rankStep = 8

    /// The default L for a model: ``contextLength``, or the model's context length when shorter.
    public static func contextLength(modelContext: Int?) -> Int {
        guard let modelContext, modelContext >= 1 else { return contextLength }
        return min(contextLength, modelContext)
    }
}
