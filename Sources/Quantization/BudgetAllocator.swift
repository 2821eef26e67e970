/// One choice for one item of a budgeted allocation: what it costs in bytes and in error.
public struct AllocationOption: Sendable, Hashable, Codable {
    /// Storage bytes of this choice (fractional bytes allowed, as the memory model counts n·b/8).
    public var bytes: Double
    /// The error this choice adds to the objective (e.g. ‖X(W − Ŵ)ᵀ‖²_F, or e_kv²·‖K‖²).
    public var cost: Double

    /// An option from bytes and cost.
    public init(bytes: Double, cost: Double) {
        self.bytes = bytes
        self.cost = cost
    }

    /// An option from whole bytes and cost.
    public init(bytes: Int, cost: Double) {
        self.init(bytes: Double(bytes), cost: cost)
    }
}

/// The chosen option of every item, with the totals.
public struct AllocationResult: Sendable, Hashable, Codable {
    /// Index of the chosen option, per item.
    public let choices: [Int]
    /// Σ cost of the chosen options.
    public let totalCost: Double
    /// Σ bytes of the chosen options (never above the budget).
    public let totalBytes: Double
    /// The budget that was given.
    public let budget: Double
    /// The unit u of the dynamic programme, budget/units bytes.
    public let unitBytes: Double
    /// Units of the chosen options, each rounded up (≤ the number of units).
    public let usedUnits: Int
}

/// Why an allocation could not be made.
public enum AllocationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Even the cheapest option of every item does not fit. Carries the budget, the smallest
    /// possible total in bytes, and that total once each option is rounded up to whole units.
    case infeasible(budget: Double, minimumBytes: Double, minimumRoundedBytes: Double)
    /// The budget or the number of units is not positive and finite.
    case invalidBudget(String)
    /// An item has no options, or an option has non-finite or negative bytes or a non-finite cost.
    case invalidOption(item: Int, detail: String)

    public var description: String {
        switch self {
        case let .infeasible(budget, minimum, rounded):
            if minimum <= budget {
                return "budget \(budget) bytes is infeasible once options are rounded up to whole units "
                    + "(needs \(rounded) bytes; the smallest choice needs \(minimum) bytes): use finer units"
            }
            return "budget \(budget) bytes is infeasible: the smallest choice needs \(minimum) bytes"
        case .invalidBudget(let s): return "invalid budget: \(s)"
        case let .invalidOption(item, detail): return "item \(item): \(detail)"
        }
    }
}

/// Multiple-choice knapsack by dynamic programming over the budget in units (DESIGN.md §4,
/// "Sensitivity and allocation"): pick one option per item minimizing Σ cost under Σ bytes ≤ budget.
///
/// The budget is cut into `units` units of u = budget/units bytes; each option's bytes are
/// rounded *up* to whole units, so any selection that fits in units fits in bytes: the budget
/// always holds. The solution is optimal (exact) for those rounded sizes. Ties in cost keep the
/// lower option index of the earlier item. The same solver serves weights (per-matrix bits) and
/// the KV cache (per-layer K/V rank × bits). Cost: O(items × units × options) time,
/// O(items × units) bytes for the choices.
public enum BudgetAllocator {
    /// The default number of units: u = budget/2000 (DESIGN.md §4 asks for 1/2000 or finer).
    public static let defaultUnits = 2000

    /// Minimizes Σ cost with Σ bytes ≤ `budget`.
    /// - Parameters:
    ///   - items: the options of each item.
    ///   - budget: bytes available.
    ///   - units: how many units the budget is cut into (≥ 1; more is finer and slower).
    /// - Throws: ``AllocationError``.
    public static func solve(_ items: [[AllocationOption]], budget: Double, units: Int = defaultUnits) throws -> AllocationResult {
        guard budget.isFinite, budget > 0 else { throw AllocationError.invalidBudget("budget \(budget) must be positive") }
        guard units >= 1, units <= 50_000_000 else { throw AllocationError.invalidBudget("units \(units) out of range") }
        let u = budget / Double(units)
        let weights = try roundedUnits(items, unit: u)
        var minimumBytes = 0.0, minimumUnits = 0
        for (i, options) in items.enumerated() {
            minimumBytes += options.map(\.bytes).min() ?? 0
            minimumUnits += weights[i].min() ?? 0
        }
        guard minimumUnits <= units else {
            throw AllocationError.infeasible(budget: budget, minimumBytes: minimumBytes,
                                             minimumRoundedBytes: Double(minimumUnits) * u)
        }
        guard !items.isEmpty else {
            return AllocationResult(choices: [], totalCost: 0, totalBytes: 0, budget: budget, unitBytes: u, usedUnits: 0)
        }
        // best[c]: least cost of the items so far using at most c units. Only a band of c matters for
        // item i: below prefixMin[i] nothing fits (∞); at or above prefixMax[i] every option fits, so
        // best[c] = best[prefixMax[i]] (copied, with its choice); below units − suffixMax[i + 1] no
        // walk back from `units` can arrive, nor does item i + 1 read there. The result is the same
        // as the full table's, in a fraction of the time when items are many.
        let width = units + 1
        var prefixMin = [Int](repeating: 0, count: items.count + 1), prefixMax = prefixMin, suffixMax = prefixMin
        for i in items.indices {
            prefixMin[i + 1] = Swift.min(units + 1, prefixMin[i] + (weights[i].min() ?? 0))
            prefixMax[i + 1] = Swift.min(units, prefixMax[i] + (weights[i].max() ?? 0))
        }
        for i in items.indices.reversed() { suffixMax[i] = Swift.min(units, suffixMax[i + 1] + (weights[i].max() ?? 0)) }
        var best = [Double](repeating: 0, count: width)
        var next = [Double](repeating: .infinity, count: width)
        var choice = [UInt16](repeating: UInt16.max, count: items.count * width)
        choice.withUnsafeMutableBufferPointer { ch in
            for i in items.indices {
                // (A budget above every option's total can push the suffix bound past `high`: keep n[high].)
                let low = Swift.min(Swift.max(prefixMin[i + 1], units - suffixMax[i + 1]), prefixMax[i + 1])
                let high = prefixMax[i + 1]  // ≤ units
                best.withUnsafeBufferPointer { b in
                    next.withUnsafeMutableBufferPointer { n in
                        n.update(repeating: .infinity)
                        let row = ch.baseAddress! + i * width
                        if low <= high {
                            for (j, option) in items[i].enumerated() {
                                let w = weights[i][j]
                                let start = Swift.max(low, w)
                                guard start <= high else { continue }
                                let cost = option.cost
                                for c in start...high {
                                    let candidate = b[c - w] + cost
                                    if candidate < n[c] {
                                        n[c] = candidate
                                        row[c] = UInt16(j)
                                    }
                                }
                            }
                            if high < units {
                                let (value, pick) = (n[high], row[high])
                                for c in (high + 1)...units {
                                    n[c] = value
                                    row[c] = pick
                                }
                            }
                        }
                    }
                }
                swap(&best, &next)
            }
        }
        // Walk back from the full budget.
        var choices = [Int](repeating: 0, count: items.count)
        var c = units, usedUnits = 0
        for i in items.indices.reversed() {
            let j = Int(choice[i * width + c])
            choices[i] = j
            c -= weights[i][j]
            usedUnits += weights[i][j]
        }
        var totalBytes = 0.0, totalCost = 0.0
        for (i, j) in choices.enumerated() {
            totalBytes += items[i][j].bytes
            totalCost += items[i][j].cost
        }
        return AllocationResult(choices: choices, totalCost: totalCost, totalBytes: totalBytes, budget: budget,
                                unitBytes: u, usedUnits: usedUnits)
    }

    /// Minimizes Σ cost at an average of at most `averageBits` bits per weight: the budget is
    /// averageBits × parameterCount / 8 bytes (DESIGN.md §4, bits per weight = 8·bytes/n).
    /// - Throws: ``AllocationError``.
    public static func solve(_ items: [[AllocationOption]], averageBits: Double, parameterCount: Int,
                             units: Int = defaultUnits) throws -> AllocationResult {
        try solve(items, budget: averageBits * Double(parameterCount) / 8, units: units)
    }

    /// Every option's size in whole units of `unit` bytes, rounded up (w·u ≥ bytes in Float arithmetic too).
    static func roundedUnits(_ items: [[AllocationOption]], unit u: Double) throws -> [[Int]] {
        try items.enumerated().map { i, options in
            guard !options.isEmpty else { throw AllocationError.invalidOption(item: i, detail: "no options") }
            guard options.count < Int(UInt16.max) else { throw AllocationError.invalidOption(item: i, detail: "too many options") }
            return try options.enumerated().map { j, o in
                guard o.bytes.isFinite, o.bytes >= 0, o.cost.isFinite else {
                    throw AllocationError.invalidOption(item: i, detail: "option \(j) has bytes \(o.bytes), cost \(o.cost)")
                }
                let ratio = o.bytes / u
                guard ratio < Double(Int.max / 4) else { return Int.max / 4 }
                var w = Int(ratio.rounded(.up))
                while Double(w) * u < o.bytes { w += 1 }
                return w
            }
        }
    }

    /// Exhaustive search over all combinations with the same rounded unit sizes (for tests on
    /// small instances): the least total cost that fits, or nil when none fits.
    public static func bruteForceCost(_ items: [[AllocationOption]], budget: Double, units: Int = defaultUnits) throws -> Double? {
        let weights = try roundedUnits(items, unit: budget / Double(units))
        var best: Double? = nil
        var index = [Int](repeating: 0, count: items.count)
        while true {
            var w = 0, cost = 0.0
            for (i, j) in index.enumerated() {
                w += weights[i][j]
                cost += items[i][j].cost
            }
            if w <= units, cost < (best ?? .infinity) { best = cost }
            var k = 0
            while k < items.count {
                index[k] += 1
                if index[k] < items[k].count { break }
                index[k] = 0
                k += 1
            }
            if k == items.count { return best }
        }
    }
}
