using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Sockets;
using PipeTransport.Perf.Data;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>
/// One-way socket throughput in 64 KiB writes, every byte hashed by the receiver. Both ends
/// use the variant's own stack: <c>FdConnection</c> (listener + connect) vs <c>Socket</c> +
/// <c>NetworkStream</c> + <c>PipeReader.Create</c>/<c>PipeWriter.Create</c> vs raw
/// <c>Socket.SendAsync</c>/<c>ReceiveAsync</c> loops.
/// </summary>
internal sealed class SocketThroughputScenario(SocketKind kind) : IScenario
{
    private const int WriteSize = 64 * 1024;

    public string Name => kind == SocketKind.Tcp ? "tcp" : "unix";

    public string Description => $"{(kind == SocketKind.Tcp ? "TCP loopback" : "Unix socket")} throughput, 64 KiB writes, every byte hashed";

    public string Unit => "GiB/s";

    public bool HigherIsBetter => true;

    private IReadOnlyList<Variant>? _variants;

    // Built once: the report tells the subject by reference.
    public IReadOnlyList<Variant> Variants => _variants ??=
    [
        new("FdConnection", c => RunFdConnectionAsync(c, FdConnections.Options(c))),
        new("Socket + NetworkStream + PipeReader/PipeWriter.Create", RunNetworkStreamAsync, 1.2),
        new("raw Socket.SendAsync/ReceiveAsync", RunRawSocketAsync),
        new("FdConnection, reactors that block at once (YieldsBeforeWaiting = false)", c => RunFdConnectionAsync(c, FdConnections.NoYieldOptions(c)), Extra: true),
        new("FdConnection, ReactorPolling.DedicatedThread", c => RunFdConnectionAsync(c, FdConnections.DedicatedOptions(c)), Extra: true),
        new("FdConnection, PoolSendThreshold = int.MaxValue", c => RunFdConnectionAsync(c, FdConnections.InlineSendOptions(c)), Extra: true),
        new("FdConnection, ReactorPolling.HandOffToThreadPool", c => RunFdConnectionAsync(c, FdConnections.HandOffOptions(c)), Extra: true),
        new("FdConnection, ApplicationScheduler = Inline", c => RunFdConnectionAsync(c, FdConnections.InlineOptions(c)), Extra: true),
        new("FdConnection, OutputPauseThreshold = 1 MiB", c => RunFdConnectionAsync(c, FdConnections.LargeOutputOptions(c)), Extra: true),
        new("FdConnection, transport on the pool, application inline after it", c => RunFdConnectionAsync(c, FdConnections.PoolOptions(c)), Extra: true),
    ];

    private async Task<Sample> RunFdConnectionAsync(RunContext context, FdConnectionOptions options)
    {
        FifoRun.PrepareExpectedHash(context);
        var (client, server) = await SocketPairs.ConnectFdAsync(kind, context, options);
        await using (client)
        await using (server)
        {
            return await MeasureAsync(context, () => SendAsync(context, client.Output), hash => ReceiveAsync(context, server.Input, hash));
        }
    }

    private async Task<Sample> RunNetworkStreamAsync(RunContext context)
    {
        FifoRun.PrepareExpectedHash(context);
        var (client, server) = await SocketPairs.ConnectSocketsAsync(kind, context);
        using (client)
        using (server)
        {
            var output = PipeWriter.Create(new NetworkStream(client), new StreamPipeWriterOptions(minimumBufferSize: WriteSize));
            var input = PipeReader.Create(new NetworkStream(server), new StreamPipeReaderOptions(
                bufferSize: context.Settings.BufferSize, minimumReadSize: Math.Min(4096, context.Settings.BufferSize)));
            return await MeasureAsync(
                context,
                async () =>
                {
                    await SendAsync(context, output);
                    client.Shutdown(SocketShutdown.Send);
                },
                hash => ReceiveAsync(context, input, hash));
        }
    }

    private async Task<Sample> RunRawSocketAsync(RunContext context)
    {
        FifoRun.PrepareExpectedHash(context);
        var (client, server) = await SocketPairs.ConnectSocketsAsync(kind, context);
        using (client)
        using (server)
        {
            return await MeasureAsync(
                context,
                async () =>
                {
                    var pattern = new DataPattern(PerfSettings.Seed);
                    for (long offset = 0; offset < context.Size;)
                    {
                        var slice = pattern.Slice(offset, (int)Math.Min(WriteSize, context.Size - offset));
                        int sent = await client.SendAsync(slice, SocketFlags.None, context.CancellationToken);
                        offset += sent;
                    }

                    client.Shutdown(SocketShutdown.Send);
                },
                async hash =>
                {
                    var buffer = GC.AllocateUninitializedArray<byte>(context.Settings.BufferSize, pinned: true);
                    int n;
                    while ((n = await server.ReceiveAsync(buffer, SocketFlags.None, context.CancellationToken)) > 0)
                    {
                        hash.Append(buffer.AsSpan(0, n));
                    }

                    return Stopwatch.GetTimestamp();
                });
        }
    }

    private static async Task<Sample> MeasureAsync(RunContext context, Func<Task> send, Func<StreamHash, Task<long>> receive)
    {
        var hash = new StreamHash();
        long start = Stopwatch.GetTimestamp();
        var sending = Task.Run(send);
        long end = await Task.Run(() => receive(hash));
        await sending;
        FifoRun.Verify(context, hash.Finish(), hash.Length);
        return Sample.Throughput(context.Size, start, end);
    }

    private static async Task SendAsync(RunContext context, PipeWriter output)
    {
        var pattern = new DataPattern(PerfSettings.Seed);
        for (long offset = 0; offset < context.Size;)
        {
            var slice = pattern.Slice(offset, (int)Math.Min(WriteSize, context.Size - offset));
            output.Write(slice.Span);
            offset += slice.Length;
            if ((await output.FlushAsync(context.CancellationToken)).IsCompleted)
            {
                throw new InvalidOperationException("the receiver went away");
            }
        }

        await output.CompleteAsync();
    }

    private static Task<long> ReceiveAsync(RunContext context, PipeReader input, StreamHash hash) =>
        hash.AppendToEndAsync(input, context.CancellationToken);
}
