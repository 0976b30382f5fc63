using System.Diagnostics;
using System.IO.Pipelines;
using PipeTransport.Perf.Data;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>
/// Read a FIFO fed by a separate writer process, hashing every byte.
/// <c>FdConnection.Input</c> vs <c>FileStream</c> + <c>PipeReader.Create</c> vs a raw blocking
/// <c>read</c> loop (an unbuffered <c>FileStream.Read</c>: one syscall per buffer, the limit for a
/// .NET reader).
/// </summary>
internal sealed class FifoReadScenario : IScenario
{
    public string Name => "fifo-read";

    public string Description => "FIFO read throughput, separate writer process, every byte hashed";

    public string Unit => "GiB/s";

    public bool HigherIsBetter => true;

    public IReadOnlyList<Variant> Variants { get; } =
    [
        new("FdConnection.Input", c => RunAsync(c, (c, p, h) => ReadWithFdConnectionAsync(c, p, h, FdConnections.Options(c)))),
        new("FileStream + PipeReader.Create", c => RunAsync(c, ReadWithStreamPipeReaderAsync), 1.0),
        new("raw blocking read loop", c => RunAsync(c, ReadWithSyscallLoopAsync), 1.0),
        new("FdConnection, PipeCapacity = 0 (kernel default)", c => RunAsync(c, (c, p, h) => ReadWithFdConnectionAsync(c, p, h, FdConnections.KernelPipeSizeOptions(c))), Extra: true),
        new("FdConnection, ApplicationScheduler = Inline", c => RunAsync(c, (c, p, h) => ReadWithFdConnectionAsync(c, p, h, FdConnections.InlineOptions(c))), Extra: true),
        new("FdConnection, ReactorPolling.DedicatedThread", c => RunAsync(c, (c, p, h) => ReadWithFdConnectionAsync(c, p, h, FdConnections.DedicatedOptions(c))), Extra: true),
        new("FdConnection, ReactorPolling.HandOffToThreadPool", c => RunAsync(c, (c, p, h) => ReadWithFdConnectionAsync(c, p, h, FdConnections.HandOffOptions(c))), Extra: true),
    ];

    internal static async Task<Sample> RunAsync(RunContext context, Func<RunContext, string, StreamHash, Task<long>> read)
    {
        FifoRun.PrepareExpectedHash(context);
        string path = FifoRun.NewFifo(context, "read.fifo");
        await using var writer = await FifoRun.StartWriterAsync(context, path);
        var hash = new StreamHash();
        long end = await read(context, path, hash);
        long start = await FifoRun.FinishWriterAsync(context, writer);
        FifoRun.Verify(context, hash.Finish(), hash.Length);
        return Sample.Throughput(context.Size, start, end);
    }

    private static async Task<long> ReadWithFdConnectionAsync(RunContext context, string path, StreamHash hash, FdConnectionOptions options)
    {
        await using var connection = await FdConnections.OpenFifoReaderAsync(path, options, context.CancellationToken);
        var input = connection.Input;
        return await hash.AppendToEndAsync(input, context.CancellationToken);
    }

    private static Task<long> ReadWithStreamPipeReaderAsync(RunContext context, string path, StreamHash hash) =>
        ReadWithStreamPipeReaderAsync(path, hash, context.Settings.BufferSize, context.CancellationToken);

    private static Task<long> ReadWithSyscallLoopAsync(RunContext context, string path, StreamHash hash) =>
        ReadWithSyscallLoopAsync(path, hash, context.Settings.BufferSize, context.CancellationToken);

    /// <summary>
    /// Reads the FIFO at <paramref name="path"/> to its end the way <paramref name="method"/> names
    /// (<c>fdconnection</c>, <c>filestream</c>, <c>raw</c>), hashing every byte; returns the end timestamp.
    /// For the fresh-process child (<see cref="FifoReadFreshScenario"/>).
    /// </summary>
    internal static async Task<long> ReadAsync(string method, string path, StreamHash hash, int bufferSize, CancellationToken ct)
    {
        switch (method)
        {
            case "fdconnection":
                await using (var connection = await FdConnections.OpenFifoReaderAsync(path, new FdConnectionOptions { BufferSize = bufferSize }, ct))
                {
                    return await hash.AppendToEndAsync(connection.Input, ct);
                }

            case "filestream":
                return await ReadWithStreamPipeReaderAsync(path, hash, bufferSize, ct);
            case "raw":
                return await ReadWithSyscallLoopAsync(path, hash, bufferSize, ct);
            default:
                throw new ArgumentException($"unknown read method '{method}'", nameof(method));
        }
    }

    private static async Task<long> ReadWithStreamPipeReaderAsync(string path, StreamHash hash, int bufferSize, CancellationToken ct)
    {
        // bufferSize 0: no FileStream buffer under the PipeReader's own; the reader's segments are as
        // large as every other variant's buffer (the defaults, 4 KiB each, would be far slower).
        await using var stream = await FifoRun.OpenBlockingAsync(
            () => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0), ct);
        var input = PipeReader.Create(stream, new StreamPipeReaderOptions(
            bufferSize: bufferSize, minimumReadSize: Math.Min(bufferSize, 4096)));
        return await hash.AppendToEndAsync(input, ct);
    }

    private static async Task<long> ReadWithSyscallLoopAsync(string path, StreamHash hash, int bufferSize, CancellationToken ct)
    {
        // A FileStream without a buffer: each Read is exactly one read(2) into our buffer.
        using var stream = await FifoRun.OpenBlockingAsync(
            () => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0), ct);
        var buffer = GC.AllocateUninitializedArray<byte>(bufferSize, pinned: true);
        int n;
        while ((n = stream.Read(buffer)) > 0)
        {
            hash.Append(buffer.AsSpan(0, n));
        }

        return Stopwatch.GetTimestamp();
    }
}
