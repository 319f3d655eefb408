// Runs one MLUpdateTask on the golden training set and prints the updated model's logits.
// usage: swift personalize.swift MODEL.mlpackage REQUEST.json RESULT.json
// REQUEST: {"embedding": [[Float]], "target": [[Double]], "learning_rate", "mini_batch_size", "epochs",
//           "input", "target_name", "output"}
import CoreML
import Foundation

struct Request: Decodable {
    let embedding: [[Float]]
    let target: [[Double]]
    let learning_rate: Double
    let mini_batch_size: Int
    let epochs: Int
    let input: String
    let target_name: String
    let output: String
}

func array(_ row: [Float]) throws -> MLMultiArray {
    let a = try MLMultiArray(shape: [1, NSNumber(value: row.count)], dataType: .float32)
    for (i, v) in row.enumerated() { a[i] = NSNumber(value: v) }
    return a
}

func array(_ row: [Double]) throws -> MLMultiArray {
    let a = try MLMultiArray(shape: [1, NSNumber(value: row.count)], dataType: .double)
    for (i, v) in row.enumerated() { a[i] = NSNumber(value: v) }
    return a
}

let args = CommandLine.arguments
let request = try JSONDecoder().decode(Request.self, from: Data(contentsOf: URL(fileURLWithPath: args[2])))
let compiled = try MLModel.compileModel(at: URL(fileURLWithPath: args[1]))
var examples: [MLFeatureProvider] = []
for (row, target) in zip(request.embedding, request.target) {
    examples.append(try MLDictionaryFeatureProvider(dictionary: [
        request.input: MLFeatureValue(multiArray: try array(row)),
        request.target_name: MLFeatureValue(multiArray: try array(target)),
    ]))
}
let configuration = MLModelConfiguration()
configuration.computeUnits = .cpuOnly
configuration.parameters = [
    MLParameterKey.learningRate: request.learning_rate,
    MLParameterKey.miniBatchSize: request.mini_batch_size,
    MLParameterKey.epochs: request.epochs,
]
var failure: Error?
var logits: [[Float]] = []
let done = DispatchSemaphore(value: 0)
let task = try MLUpdateTask(
    forModelAt: compiled, trainingData: MLArrayBatchProvider(array: examples), configuration: configuration,
    completionHandler: { context in
        defer { done.signal() }
        if let error = context.task.error { failure = error; return }
        do {
            for row in request.embedding {
                let input = try MLDictionaryFeatureProvider(dictionary: [request.input: try array(row)])
                let out = try context.model.prediction(from: input).featureValue(for: request.output)!.multiArrayValue!
                logits.append((0..<out.count).map { Float(truncating: out[$0]) })
            }
        } catch { failure = error }
    })
task.resume()
done.wait()
if let failure = failure { FileHandle.standardError.write("\(failure)\n".data(using: .utf8)!); exit(1) }
try JSONEncoder().encode(["logits": logits]).write(to: URL(fileURLWithPath: args[3]))
