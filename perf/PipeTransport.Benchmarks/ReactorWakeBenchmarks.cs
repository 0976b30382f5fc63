using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;

namespace PipeTransport.Benchmarks;

/// <summary>
/// The reactor's wait/wake path through <see cref="RawFd"/> over an anonymous pipe.
/// <see cref="WaitThenWake"/>: the read callback first sees EAGAIN and parks a waiter, then one byte
/// is written and the reactor thread must notice the edge and wake the waiter, which reads the byte.
/// <see cref="ReadyNoWait"/>: the byte is already there, so the callback succeeds at once (the
/// RawConn fast path, no reactor involved). Neither should allocate.
/// </summary>
// The benchmark methods use the pooling builder so that their own state machines do not show up
// in Allocated: what remains is the library's.
[MemoryDiagnoser]
public class ReactorWakeBenchmarks
{
    private readonly byte[] _one = [42];
    private BenchmarkFds.PipePair _pipe = null!;
    private RawFd _reader = null!;
    private Func<int, bool> _readOne = null!;

    /// <summary>Makes the pipe and registers its read end with the default reactor group.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _pipe = BenchmarkFds.CreatePipe();
        _reader = RawFd.Create(_pipe.ReadEnd);
        _readOne = _pipe.TryReadOne;
    }

    /// <summary>Closes the pipe.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _reader.Dispose();
        _pipe.Dispose();
    }

    /// <summary>Park a waiter on EAGAIN, write one byte, await the wake-up and the read.</summary>
    [Benchmark]
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WaitThenWake()
    {
        var read = _reader.ReadAsync(_readOne);
        _pipe.Write(_one);
        await read;
    }

    /// <summary>Write one byte, then ReadAsync finds it without waiting.</summary>
    [Benchmark(Baseline = true)]
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReadyNoWait()
    {
        _pipe.Write(_one);
        await _reader.ReadAsync(_readOne);
    }
}
