using System.Runtime.CompilerServices;
using System.Buffers;
using System.IO.Pipelines;
using BenchmarkDotNet.Attributes;

namespace PipeTransport.Benchmarks;

/// <summary>
/// One application-level read/write cycle through two connected <see cref="FdConnection"/>s: write
/// 64 bytes to one end's Output, FlushAsync, ReadAsync them from the other end's Input, AdvanceTo.
/// Covers the send loop (writev), the reactor's wake-up of the receive loop, the read and both
/// pipes' scheduling. Allocated bytes per operation should be zero in steady state.
/// </summary>
// The benchmark methods use the pooling builder so that their own state machines do not show up
// in Allocated: what remains is the library's.
[MemoryDiagnoser]
public class FdConnectionCycleBenchmarks
{
    private readonly byte[] _message = new byte[64];
    private FdConnection _a = null!;
    private FdConnection _b = null!;

    /// <summary>Which fd kind connects the two ends.</summary>
    [Params("socketpair", "pipes")]
    public string Kind { get; set; } = "socketpair";

    /// <summary>Creates the pair once; every operation reuses it.</summary>
    [GlobalSetup]
    public void Setup() => (_a, _b) = Kind == "socketpair" ? FdConnection.CreatePair() : BenchmarkFds.CreatePipeConnections();

    /// <summary>Closes both ends.</summary>
    [GlobalCleanup]
    public async Task Cleanup()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
    }

    /// <summary>Write 64 bytes, flush, read them on the other end, advance.</summary>
    [Benchmark]
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteFlushReadAdvance()
    {
        _a.Output.Write(_message);
        await _a.Output.FlushAsync();
        var input = _b.Input;
        while (true)
        {
            var result = await input.ReadAsync();
            var buffer = result.Buffer;
            if (buffer.Length >= _message.Length)
            {
                input.AdvanceTo(buffer.GetPosition(_message.Length));
                return;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }
}
