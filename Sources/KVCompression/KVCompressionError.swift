import Foundation
import LinearAlgebra
import Quantization

/// An error of the KV compression engine; wrapped errors keep the failing operation.
public enum KVCompressionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A caller passed a value outside its domain (shape, rank, bits, …).
    case invalidArgument(String)
    /// A LinearAlgebra routine failed (LAPACK info, shape, non-finite input).
    case linearAlgebra(LinearAlgebraError)
    /// The quantizer rejected its input.
    case quantization(QuantizationError)
    /// A background computation was cancelled.
    case cancelled
    /// A cache or statistics file could not be written.
    case io(path: String, message: String)

    public var description: String {
        switch self {
        case .invalidArgument(let s): return "invalid argument: \(s)"
        case .linearAlgebra(let e): return e.description
        case .quantization(let e): return "quantization: \(e.description)"
        case .cancelled: return "cancelled"
        case let .io(path, message): return "\(path): \(message)"
        }
    }

    /// Runs `body`, turning LinearAlgebra and Quantization errors into ``KVCompressionError``.
    static func wrap<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as LinearAlgebraError {
            throw KVCompressionError.linearAlgebra(e)
        } catch let e as QuantizationError {
            throw KVCompressionError.quantization(e)
        }
    }
}

/// A flag a caller sets to stop a background computation; checked between units of work.
public final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false

    /// A flag that is not set.
    public init() {}

    /// Asks the computation to stop at its next check.
    public func cancel() { lock.withLock { flag = true } }

    /// Whether ``cancel()`` was called.
    public var isCancelled: Bool { lock.withLock { flag } }

    /// Throws ``KVCompressionError/cancelled`` when the flag is set (a nil flag never cancels).
    static func check(_ flag: CancellationFlag?) throws {
        if flag?.isCancelled == true { throw KVCompressionError.cancelled }
    }
}

/// Progress of a background computation: units done out of a total; called from worker threads.
public typealias ProgressHandler = @Sendable (_ completed: Int, _ total: Int) -> Void

/// A counter shared by worker threads, reporting each completed unit to a ``ProgressHandler``.
final class ProgressCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var done = 0
    let total: Int
    let handler: ProgressHandler?

    init(total: Int, handler: ProgressHandler?) {
        self.total = total
        self.handler = handler
    }

    func step() {
        let now = lock.withLock { () -> Int in
            done += 1
            return done
        }
        handler?(now, total)
    }
}

/// Runs `count` independent jobs on all cores with OpenBLAS held to one thread meanwhile
/// (parallelism is above BLAS), restoring the previous BLAS thread count afterwards.
/// The first error (or cancellation) stops the remaining jobs and is rethrown.
func parallelJobs(count: Int, cancellation: CancellationFlag?, _ job: @Sendable (Int) throws -> Void) throws {
    guard count > 0 else { return }
    SingleThreadedBLAS.enter()
    defer { SingleThreadedBLAS.leave() }
    let firstError = ErrorBox()
    DispatchQueue.concurrentPerform(iterations: count) { index in
        if firstError.hasError || cancellation?.isCancelled == true { return }
        do { try job(index) } catch { firstError.record(error) }
    }
    if let e = firstError.error { throw e }
    try CancellationFlag.check(cancellation)
}

/// OpenBLAS's thread count is process-wide, so overlapping parallel regions (two background jobs)
/// share one scope: the first to enter saves the count and sets 1, the last to leave restores it.
enum SingleThreadedBLAS {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var depth = 0
    nonisolated(unsafe) private static var saved = 1

    static func enter() {
        lock.withLock {
            if depth == 0 {
                saved = blasThreadCount
                setBLASThreadCount(1)
            }
            depth += 1
        }
    }

    static func leave() {
        lock.withLock {
            depth -= 1
            if depth == 0 { setBLASThreadCount(saved) }
        }
    }
}

/// Keeps the first error thrown by parallel jobs.
final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Error?

    func record(_ e: Error) { lock.withLock { if stored == nil { stored = e } } }
    var error: Error? { lock.withLock { stored } }
    var hasError: Bool { error != nil }
}

/// A fixed-size array written by parallel jobs at distinct indices.
final class ParallelResults<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [T?]

    init(count: Int) { slots = [T?](repeating: nil, count: count) }

    func set(_ index: Int, _ value: T) { lock.withLock { slots[index] = value } }
    var values: [T?] { lock.withLock { slots } }
}
