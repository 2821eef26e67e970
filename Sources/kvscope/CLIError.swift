import ArgumentParser
import Foundation
import TensorFiles

/// A failure a command reports as one line, e.g. "--rank must be at most d_kv (192)".
struct CommandError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// How kvscope reports errors (DESIGN.md §5): one line `kvscope: error: …` on stderr, exit status 1.
enum CLIError {
    /// Writes `kvscope: error: MESSAGE` as one line to stderr.
    static func printError(_ message: String) {
        let oneLine = message.split(whereSeparator: \.isNewline).joined(separator: " ")
        FileHandle.standardError.write(Data("kvscope: error: \(oneLine)\n".utf8))
    }

    /// Runs a command body, turning file and command errors into the one-line report and exit status 1.
    ///
    /// Argument-parser's own errors (usage errors, `ExitCode`, `CleanExit`) pass through untouched.
    static func reporting<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as TensorFileError {
            printError(error.description)
            throw ExitCode(1)
        } catch let error as CommandError {
            printError(error.description)
            throw ExitCode(1)
        } catch let error as ExitCode {
            throw error
        } catch let error as CleanExit {
            throw error
        } catch let error as ValidationError {
            throw error
        } catch {
            // Engine errors (LAPACK, quantization, KV compression) describe themselves.
            printError(String(describing: error))
            throw ExitCode(1)
        }
    }

    /// Writes a JSON document (one line, sorted keys) to stdout.
    ///
    /// A number that is not finite has no JSON form and is never a result kvscope reports: the
    /// document is not written and the command fails with one line naming the value's place.
    /// - Throws: ``CommandError`` naming the first non-finite value (e.g. `perplexity`, `layers[3].k`).
    static func printJSON(_ document: JSON) throws {
        if let place = document.firstNonFinitePath() {
            throw CommandError("the result \(place) is not finite; nothing was written")
        }
        FileHandle.standardOutput.write(Data((document.text + "\n").utf8))
    }
}
