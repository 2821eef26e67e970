/// An error from a LinearAlgebra operation; it keeps the failing operation and, for LAPACK,
/// the routine's raw `info` code.
public enum LinearAlgebraError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Operand shapes do not fit the operation.
    case shapeMismatch(operation: String, detail: String)
    /// An argument was rejected before any BLAS/LAPACK call (LAPACKE would print to stdout).
    case invalidArgument(operation: String, detail: String)
    /// The input holds NaN or infinity, which LAPACK's iterative routines do not handle.
    case nonFiniteInput(operation: String)
    /// A LAPACK routine returned a non-zero `info`.
    case lapack(routine: String, info: Int32)

    public var description: String {
        switch self {
        case let .shapeMismatch(op, detail): return "\(op): shape mismatch: \(detail)"
        case let .invalidArgument(op, detail): return "\(op): invalid argument: \(detail)"
        case let .nonFiniteInput(op): return "\(op): input contains NaN or infinity"
        case let .lapack(routine, info):
            if info < 0 { return "\(routine): argument \(-info) had an illegal value (info=\(info))" }
            return "\(routine): did not converge (info=\(info))"
        }
    }
}
