using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Sockets;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>
/// Ping-pong latency. A client sends a 64-byte message, an echo server returns it, the
/// client waits for all 64 bytes before sending the next; each message carries its sequence number,
/// checked on return. <c>FdConnection</c> on both ends vs async <c>Socket</c> on both ends.
/// Reports round trips per second and the median p50/p99 round-trip time.
/// </summary>
internal sealed class PingPongScenario(SocketKind kind) : IScenario
{
    private const int MessageSize = 64;

    public string Name => kind == SocketKind.Tcp ? "pingpong-tcp" : "pingpong-unix";

    public string Description => $"{(kind == SocketKind.Tcp ? "TCP loopback" : "Unix socket")} ping-pong, 64-byte messages, one in flight";

    public string Unit => "round trips/s";

    public bool HigherIsBetter => true;

    private IReadOnlyList<Variant>? _variants;

    // Built once: the report tells the subject by reference.
    public IReadOnlyList<Variant> Variants => _variants ??=
    [
        new("FdConnection", c => RunFdConnectionAsync(c, FdConnections.Options(c))),
        new("async Socket", RunSocketAsync, 1.2),
        new("FdConnection, ApplicationScheduler = Inline", c => RunFdConnectionAsync(c, FdConnections.InlineOptions(c)), Extra: true),
        new("FdConnection, transport on the pool, application inline after it", c => RunFdConnectionAsync(c, FdConnections.PoolOptions(c)), Extra: true),
        new("FdConnection, one reactor", c => RunFdConnectionAsync(c, FdConnections.OneReactorOptions(c)), Extra: true),
        new("FdConnection, reactors that block at once (YieldsBeforeWaiting = false)", c => RunFdConnectionAsync(c, FdConnections.NoYieldOptions(c)), Extra: true),
        new("FdConnection, ReactorPolling.DedicatedThread", c => RunFdConnectionAsync(c, FdConnections.DedicatedOptions(c)), Extra: true),
        new("FdConnection, ReactorPolling.HandOffToThreadPool", c => RunFdConnectionAsync(c, FdConnections.HandOffOptions(c)), Extra: true),
    ];

    private async Task<Sample> RunFdConnectionAsync(RunContext context, FdConnectionOptions options)
    {
        var ct = context.CancellationToken;
        var (client, server) = await SocketPairs.ConnectFdAsync(kind, context, options);
        await using (client)
        await using (server)
        {
            var echo = Task.Run(() => EchoAsync(server, ct));
            var message = new byte[MessageSize];
            var times = new long[context.RoundTrips];
            for (int i = 0; i < times.Length; i++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(message, i);
                long start = Stopwatch.GetTimestamp();
                client.Output.Write(message);
                await client.Output.FlushAsync(ct);
                while (true)
                {
                    var result = await client.Input.ReadAsync(ct);
                    var buffer = result.Buffer;
                    if (buffer.Length >= MessageSize)
                    {
                        CheckSequence(buffer.Slice(0, MessageSize), i);
                        client.Input.AdvanceTo(buffer.GetPosition(MessageSize));
                        break;
                    }

                    client.Input.AdvanceTo(buffer.Start, buffer.End);
                    if (result.IsCompleted)
                    {
                        throw new EndOfStreamException("the echo server closed early");
                    }
                }

                times[i] = Stopwatch.GetTimestamp() - start;
            }

            await client.Output.CompleteAsync();
            await echo;
            return Summarize(times);
        }
    }

    private static async Task EchoAsync(FdConnection server, CancellationToken ct)
    {
        while (true)
        {
            var result = await server.Input.ReadAsync(ct);
            foreach (var segment in result.Buffer)
            {
                server.Output.Write(segment.Span);
            }

            server.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                await server.Output.CompleteAsync();
                return;
            }

            await server.Output.FlushAsync(ct);
        }
    }

    private async Task<Sample> RunSocketAsync(RunContext context)
    {
        var ct = context.CancellationToken;
        var (client, server) = await SocketPairs.ConnectSocketsAsync(kind, context);
        using (client)
        using (server)
        {
            var echo = Task.Run(() => EchoAsync(server, ct));
            var message = new byte[MessageSize];
            var reply = new byte[MessageSize];
            var times = new long[context.RoundTrips];
            for (int i = 0; i < times.Length; i++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(message, i);
                long start = Stopwatch.GetTimestamp();
                await client.SendAsync(message, SocketFlags.None, ct);
                for (int got = 0; got < MessageSize;)
                {
                    int n = await client.ReceiveAsync(reply.AsMemory(got), SocketFlags.None, ct);
                    got += n > 0 ? n : throw new EndOfStreamException("the echo server closed early");
                }

                CheckSequence(new ReadOnlySequence<byte>(reply), i);
                times[i] = Stopwatch.GetTimestamp() - start;
            }

            client.Shutdown(SocketShutdown.Send);
            await echo;
            return Summarize(times);
        }
    }

    private static async Task EchoAsync(Socket server, CancellationToken ct)
    {
        var buffer = new byte[4096];
        int n;
        while ((n = await server.ReceiveAsync(buffer, SocketFlags.None, ct)) > 0)
        {
            await server.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, ct);
        }

        server.Shutdown(SocketShutdown.Send);
    }

    private static void CheckSequence(ReadOnlySequence<byte> message, long expected)
    {
        Span<byte> first = stackalloc byte[8];
        message.Slice(0, 8).CopyTo(first);
        if (BinaryPrimitives.ReadInt64LittleEndian(first) != expected)
        {
            throw new InvalidDataException($"round trip {expected} returned another message");
        }
    }

    private static Sample Summarize(long[] times)
    {
        double seconds = times.Sum() / (double)Stopwatch.Frequency;
        Array.Sort(times);
        double micros = 1e6 / Stopwatch.Frequency;
        return new Sample(
            times.Length / seconds,
            times[times.Length / 2] * micros,
            times[Math.Min(times.Length - 1, (int)(times.Length * 0.99))] * micros);
    }
}
