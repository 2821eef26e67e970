/// The ranking of a matrix's entries by magnitude, from which LLM-MQ's sparse outliers are taken.
///
/// DESIGN.md §4 ("Outliers"): the largest fraction p of |w| per matrix stays fp16 in a CSR side
/// table and is left out of the group ranges. The count is k = ⌊p·n⌋. Ties in |w| are broken by
/// the flat row-major index, lower index first, so the selection is deterministic: entry a ranks
/// before entry b when |w_a| > |w_b|, or |w_a| = |w_b| and a < b. (−0 and +0 are equal.)
public struct OutlierRanking: Sendable {
    /// Number of entries ranked (the whole matrix).
    public let count: Int
    /// Flat indices of the largest entries by magnitude, in rank order (only `maximumCount` are kept).
    public let order: [Int]

    /// Ranks `values` by |w| and keeps the top `maximumCount` indices.
    /// - Parameters:
    ///   - values: the matrix entries, row-major; must be finite.
    ///   - maximumCount: how many of the largest entries to keep (clamped to `values.count`).
    public init(values: UnsafeBufferPointer<Float>, maximumCount: Int) {
        count = values.count
        let k = Swift.min(Swift.max(maximumCount, 0), values.count)
        guard k > 0 else { order = []; return }
        // Key: magnitude bits (monotone for non-negative floats) above the complemented index, so
        // a descending sort of keys is |w| descending, then index ascending.
        precondition(values.count <= Int(UInt32.max), "OutlierRanking: matrix too large")
        var keys = [UInt64](repeating: 0, count: values.count)
        keys.withUnsafeMutableBufferPointer { kp in
            for i in 0..<values.count {
                let magnitude = UInt64(values[i].magnitude.bitPattern & 0x7FFF_FFFF)
                kp[i] = (magnitude << 32) | UInt64(UInt32.max - UInt32(i))
            }
        }
        // Partial selection: sort only when k is a large share; otherwise find the k-th key first.
        if k < values.count {
            let threshold = OutlierRanking.kthLargest(&keys, k)
            keys = keys.filter { $0 >= threshold }
        }
        keys.sort(by: >)
        order = keys.prefix(k).map { Int(UInt32.max - UInt32(truncatingIfNeeded: $0)) }
    }

    /// Number of outliers for a fraction p of `count` entries: ⌊p·count⌋.
    public static func outlierCount(fraction: Double, count: Int) -> Int {
        guard fraction > 0, count > 0 else { return 0 }
        return Swift.min(count, Int((fraction * Double(count)).rounded(.down)))
    }

    /// The flat indices of the top `k` entries, sorted ascending (row-major order).
    public func sortedIndices(count k: Int) -> [Int] {
        Array(order.prefix(k)).sorted()
    }

    /// Quickselect on distinct keys: the k-th largest (1-based). Keys are distinct (they embed the index).
    static func kthLargest(_ keys: inout [UInt64], _ k: Int) -> UInt64 {
        var lo = 0, hi = keys.count - 1
        let target = k - 1  // position in descending order
        var state: UInt64 = 0x243F_6A88_85A3_08D3
        return keys.withUnsafeMutableBufferPointer { a in
            while true {
                if lo == hi { return a[lo] }
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let p = lo + Int((state >> 33) % UInt64(hi - lo + 1))
                let pivot = a[p]
                a.swapAt(p, hi)
                var store = lo
                for i in lo..<hi where a[i] > pivot {
                    a.swapAt(i, store)
                    store += 1
                }
                a.swapAt(store, hi)
                if store == target { return a[store] }
                if store < target { lo = store + 1 } else { hi = store - 1 }
            }
        }
    }
}

/// LLM-MQ's sparse fp16 outliers in compressed sparse row form.
///
/// Byte accounting (DESIGN.md §4): each entry costs a 2-byte fp16 value plus a column index of
/// 2 bytes, or 4 bytes when a row is longer than 65,536; row pointers cost 4·(rows + 1) bytes.
/// A matrix with no outliers has no table and costs 0 bytes.
public struct OutlierTable: Sendable, Equatable, Codable {
    /// Rows of the matrix.
    public let rows: Int
    /// Columns of the matrix.
    public let cols: Int
    /// rows + 1 offsets into `columns` and `values`.
    public let rowPointers: [UInt32]
    /// Column of each entry, ascending within a row.
    public let columns: [UInt32]
    /// fp16 bit patterns of the kept values.
    public let values: [UInt16]

    /// Number of stored entries.
    public var count: Int { values.count }

    /// An empty table (no outliers).
    public init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
        rowPointers = []
        columns = []
        values = []
    }

    /// A table of the entries at `sortedIndices` (flat row-major, ascending) of `matrix`.
    /// - Throws: ``QuantizationError/notRepresentableInHalf(_:)`` when a value overflows fp16.
    public init(rows: Int, cols: Int, matrix: UnsafeBufferPointer<Float>, sortedIndices: [Int]) throws {
        self.rows = rows
        self.cols = cols
        guard !sortedIndices.isEmpty else {
            rowPointers = []; columns = []; values = []
            return
        }
        var pointers = [UInt32](repeating: 0, count: rows + 1)
        var cols32 = [UInt32](), vals = [UInt16]()
        cols32.reserveCapacity(sortedIndices.count)
        vals.reserveCapacity(sortedIndices.count)
        for index in sortedIndices {
            let v = matrix[index]
            let h = Float16(v)
            guard h.isFinite else { throw QuantizationError.notRepresentableInHalf(v) }
            pointers[index / cols + 1] += 1
            cols32.append(UInt32(index % cols))
            vals.append(h.bitPattern)
        }
        for r in 0..<rows { pointers[r + 1] += pointers[r] }
        rowPointers = pointers
        columns = cols32
        values = vals
    }

    /// Bytes of a CSR table with `count` entries for a rows×cols matrix (DESIGN.md §4).
    public static func bytes(count: Int, rows: Int, cols: Int) -> Double {
        guard count > 0 else { return 0 }
        let indexBytes = cols > 65_536 ? 4 : 2
        return Double(count * (2 + indexBytes) + 4 * (rows + 1))
    }

    /// Bytes of this table.
    public var bytes: Double { OutlierTable.bytes(count: count, rows: rows, cols: cols) }

    /// Calls `body(row, column, value)` for every stored entry, in row-major order.
    @inlinable
    public func forEach(_ body: (Int, Int, Float) -> Void) {
        guard !values.isEmpty else { return }
        for r in 0..<rows {
            for k in Int(rowPointers[r])..<Int(rowPointers[r + 1]) {
                body(r, Int(columns[k]), Float(Float16(bitPattern: values[k])))
            }
        }
    }
}
