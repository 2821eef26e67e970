import Foundation
import LinearAlgebra
import Quantization

/// Per-matrix weight bits under an average-bits target (`kvscope tune --weight-bits`), LLM-MQ style:
/// each matrix picks one (bits, outlier fraction) minimizing Σ cost, cost = ‖X(W − Ŵ)ᵀ‖²_F when the
/// input Gram is known, else ‖W − Ŵ‖²_F = e_rel²·‖W‖² (DESIGN.md §4), solved with
/// ``Quantization/BudgetAllocator``'s average-bits mode.
public enum WeightTuner {
    /// The result of a run.
    public struct Plan: Sendable {
        /// The weights section (memory from the chosen schemes' exact bytes).
        public var section: WeightsSection
        /// Σ cost of the chosen options.
        public var totalCost: Double
        /// Σ ‖W‖² over the matrices.
        public var totalEnergy: Double
        /// The chosen tables' relative errors, by tensor.
        public var relativeErrors: [String: Double]
    }

    /// The choices tune offers by default: bits {2, 3, 4, 8}, outliers {0, 1%}, one group size, asymmetric.
    public static func choices(groupSize: Int?, bits: [Int] = [2, 3, 4, 8], outlierFractions: [Double] = [0, 0.01]) -> ErrorTableChoices {
        ErrorTableChoices(bits: bits, groupSizes: [groupSize], outlierFractions: outlierFractions, mode: .asymmetric)
    }

    /// Solves the allocation for `averageBits` bits per weight over the given tables (one per matrix, same choices).
    /// - Throws: ``Quantization/AllocationError`` when the target is below the smallest choice.
    public static func tune(tables: [ErrorTable], averageBits: Double, groupSize: Int?) throws -> Plan {
        let parameterCount = tables.reduce(0) { $0 + $1.rows * $1.cols }
        // Each option is rounded up to whole units, so with hundreds of matrices the default 2000 units
        // would leave ~0.3 bits/weight unused; 20 units per matrix and 1000 more keep the loss below 0.05.
        let units = max(BudgetAllocator.defaultUnits, 20 * tables.count + 1000) * 10
        let result = try BudgetAllocator.solve(tables.map(\.allocationOptions), averageBits: averageBits,
                                               parameterCount: parameterCount, units: units)
        var layers: [WeightLayerEntry] = []
        var errors: [String: Double] = [:]
        var compressed = 0.0, energy = 0.0
        for (t, choice) in zip(tables, result.choices) {
            let scheme = try t.choices.scheme(at: choice)
            layers.append(WeightLayerEntry(tensor: t.name, bits: scheme.quantizer.bits, outlierFraction: scheme.outlierFraction))
            errors[t.name] = t.relativeErrors[choice]
            compressed += scheme.bytes(rows: t.rows, cols: t.cols)
            energy += t.weightNormSquared
        }
        let baseline = 2 * Double(parameterCount)
        let memory = WeightMemory(baselineBytes: baseline, compressedBytes: compressed,
                                  bitsPerWeight: 8 * compressed / Double(max(parameterCount, 1)),  // DESIGN.md §4: 8·bytes/n
                                  ratio: 1 - compressed / baseline)
        return Plan(section: WeightsSection(groupSize: groupSize, layers: layers, memory: memory),
                    totalCost: result.totalCost, totalEnergy: energy, relativeErrors: errors)
    }
}
