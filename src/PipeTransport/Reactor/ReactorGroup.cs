namespace PipeTransport;

using PipeTransport.Reactor;

/// <summary>
/// A set of epoll reactors (one thread each). New fds are spread over them round-robin. The
/// process-wide <see cref="Default"/> group starts on first use with one reactor per processor.
/// </summary>
public sealed class ReactorGroup : IDisposable
{
    private static readonly Lazy<ReactorGroup> LazyDefault = new(() => new ReactorGroup(Environment.ProcessorCount));
    private readonly EpollReactor[] _reactors;
    private int _next = -1;

    /// <summary>Starts <paramref name="reactorCount"/> reactor threads.</summary>
    /// <param name="reactorCount">How many reactors (threads, epoll fds) the group runs.</param>
    public ReactorGroup(int reactorCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(reactorCount, 1);
        _reactors = new EpollReactor[reactorCount];
        for (int i = 0; i < reactorCount; i++)
        {
            _reactors[i] = new EpollReactor($"PipeTransport reactor {i}");
        }
    }

    /// <summary>The process-wide group (one reactor per processor), started on first use.</summary>
    public static ReactorGroup Default => LazyDefault.Value;

    /// <summary>How many reactors the group runs.</summary>
    public int Count => _reactors.Length;

    /// <summary>How many fds each reactor has registered now.</summary>
    public IReadOnlyList<int> RegisteredCounts => Array.ConvertAll(_reactors, r => r.RegisteredCount);

    internal EpollReactor Next() => _reactors[(int)((uint)Interlocked.Increment(ref _next) % (uint)_reactors.Length)];

    /// <summary>Stops every reactor thread. Fds still registered get no more readiness events.</summary>
    public void Dispose()
    {
        foreach (EpollReactor reactor in _reactors)
        {
            reactor.Dispose();
        }
    }
}
