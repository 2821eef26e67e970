import Foundation
import LinearAlgebra
import Testing
@testable import Quantization

@Suite struct BudgetAllocatorTests {
    func randomInstance(_ g: inout SeededGenerator, items: Int, maxOptions: Int, integerBytes: Bool) -> [[AllocationOption]] {
        (0..<items).map { _ in
            let k = Int.random(in: 1...maxOptions, using: &g)
            return (0..<k).map { _ in
                let bytes = integerBytes ? Double(Int.random(in: 1...40, using: &g)) : Double.random(in: 0.5...40, using: &g)
                return AllocationOption(bytes: bytes, cost: Double.random(in: 0...10, using: &g))
            }
        }
    }

    @Test func equalsBruteForceOnRandomSmallInstances() throws {
        var g = SeededGenerator(seed: 2024)
        var solved = 0, infeasible = 0
        for trial in 0..<400 {
            let integer = trial % 2 == 0
            let items = randomInstance(&g, items: Int.random(in: 1...6, using: &g), maxOptions: 5, integerBytes: integer)
            let budget = Double(Int.random(in: 10...120, using: &g))
            // Integer bytes with one unit per byte: the DP is exact in bytes too. Otherwise coarse units.
            let units = integer ? Int(budget) : Int.random(in: 5...60, using: &g)
            let brute = try BudgetAllocator.bruteForceCost(items, budget: budget, units: units)
            do {
                let r = try BudgetAllocator.solve(items, budget: budget, units: units)
                let best = try #require(brute)
                #expect(abs(r.totalCost - best) <= 1e-9 * max(1, best), "trial \(trial)")
                #expect(r.totalBytes <= budget)
                #expect(r.usedUnits <= units)
                let cost = r.choices.enumerated().reduce(0.0) { $0 + items[$1.offset][$1.element].cost }
                #expect(abs(cost - r.totalCost) <= 1e-12)
                solved += 1
            } catch let error as AllocationError {
                #expect(brute == nil, "trial \(trial): \(error)")
                infeasible += 1
            }
        }
        #expect(solved > 200 && infeasible > 10)
    }

    /// A budget above every option's total (the DP's band bounds then meet): the least-cost options.
    @Test func aBudgetAboveEverythingTakesTheBestOptions() throws {
        let items: [[AllocationOption]] = [
            [.init(bytes: 10, cost: 5), .init(bytes: 20, cost: 1)],
            [.init(bytes: 5, cost: 2), .init(bytes: 15, cost: 3), .init(bytes: 30, cost: 0)],
            [.init(bytes: 7, cost: 1)],
        ]
        for units in [60, 100, 1000] {
            let r = try BudgetAllocator.solve(items, budget: 1000, units: units)
            #expect(r.choices == [1, 2, 0])
            #expect(r.totalCost == 2)
            #expect(try BudgetAllocator.bruteForceCost(items, budget: 1000, units: units) == 2)
        }
    }

    @Test func integerBytesMatchBruteForceInBytes() throws {
        // Exact in bytes when u = 1 byte: compare against a search over real byte totals.
        let items: [[AllocationOption]] = [
            [.init(bytes: 10, cost: 5), .init(bytes: 20, cost: 1)],
            [.init(bytes: 7, cost: 9), .init(bytes: 14, cost: 2), .init(bytes: 28, cost: 0)],
            [.init(bytes: 5, cost: 3), .init(bytes: 9, cost: 2.5)],
        ]
        let r = try BudgetAllocator.solve(items, budget: 40, units: 40)
        // Options: (20,1)+(14,2)+(5,3) = 39 bytes, cost 6 is the best fit under 40.
        #expect(r.choices == [1, 1, 0])
        #expect(r.totalBytes == 39)
        #expect(r.totalCost == 6)
    }

    @Test func roundingUpKeepsTheBudget() throws {
        // 6 + 3 bytes fit in 10, but in units of 5 bytes they round up to 2 + 1 > 2 units.
        let items: [[AllocationOption]] = [[.init(bytes: 6, cost: 0)], [.init(bytes: 3, cost: 0)]]
        #expect(throws: AllocationError.infeasible(budget: 10, minimumBytes: 9, minimumRoundedBytes: 15)) {
            try BudgetAllocator.solve(items, budget: 10, units: 2)
        }
        let fine = try BudgetAllocator.solve(items, budget: 10, units: 10)
        #expect(fine.totalBytes == 9)
    }

    @Test func infeasibleBudgetIsAClearError() {
        let items: [[AllocationOption]] = [[.init(bytes: 30, cost: 0), .init(bytes: 50, cost: 0)], [.init(bytes: 40, cost: 1)]]
        #expect(throws: AllocationError.infeasible(budget: 60, minimumBytes: 70, minimumRoundedBytes: 70)) {
            try BudgetAllocator.solve(items, budget: 60, units: 60)
        }
        #expect(throws: AllocationError.self) { try BudgetAllocator.solve([[]], budget: 10) }
        #expect(throws: AllocationError.self) { try BudgetAllocator.solve(items, budget: -1) }
    }

    @Test func averageBitsTarget() throws {
        // Two 1000-weight matrices, options 2/4/8 bits (codes only): 3 bits on average → 750 bytes.
        let option = { (bits: Double, cost: Double) in AllocationOption(bytes: 1000 * bits / 8, cost: cost) }
        let items = [[option(2, 10), option(4, 1), option(8, 0)], [option(2, 3), option(4, 2), option(8, 0)]]
        // u = 750/6000 = 0.125 bytes divides every size, so the DP is exact in bytes here.
        let r = try BudgetAllocator.solve(items, averageBits: 3, parameterCount: 2000, units: 6000)
        #expect(r.choices == [1, 0])
        #expect(r.totalBytes == 750)
        // With the default 2000 units (u = 0.375) 500 + 250 bytes round up to 1334 + 667 > 2000 units:
        // the budget still holds, with the next best choice.
        let coarse = try BudgetAllocator.solve(items, averageBits: 3, parameterCount: 2000)
        #expect(coarse.totalBytes <= 750)
        #expect(coarse.choices == [0, 0])
    }

    @Test func smolLM2SizedProblemSolvesQuickly() throws {
        // 210 matrices with 28 options each (7 widths × 4 groups), the shape of SmolLM2's allocation.
        var g = SeededGenerator(seed: 99)
        let items: [[AllocationOption]] = (0..<210).map { _ in
            let n = Double(Int.random(in: 100_000...900_000, using: &g))
            var options: [AllocationOption] = []
            for b in 2...8 {
                for gs: Double in [32, 64, 128, 576] {
                    let bytes: Double = n * Double(b) / 8 + n / gs * 4
                    let noise = Double.random(in: 1...2, using: &g)
                    let cost: Double = noise * pow(4, -Double(b)) * gs
                    options.append(AllocationOption(bytes: bytes, cost: cost))
                }
            }
            return options
        }
        let total = items.reduce(0.0) { $0 + $1[0].bytes / 2 * 3 }
        let clock = ContinuousClock()
        var result: AllocationResult?
        let elapsed = try clock.measure { result = try BudgetAllocator.solve(items, budget: total) }
        let r = try #require(result)
        #expect(r.totalBytes <= total)
        print("allocation 210 items × 28 options, 2000 units: \(elapsed)")
    }
}
