using System.Net;
using System.Net.Sockets;
using PipeTransport.Interop;

namespace PipeTransport.Tests;

/// <summary>Two connected <see cref="FdConnection"/>s of one fd kind, and whatever must be cleaned up after them.</summary>
public sealed class ConnectedPair : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _extras = new();
    private readonly string? _directory;

    public ConnectedPair(FdConnection a, FdConnection b, string? directory = null, params IAsyncDisposable[] extras)
    {
        A = a;
        B = b;
        _directory = directory;
        _extras.AddRange(extras);
    }

    public FdConnection A { get; }

    public FdConnection B { get; }

    public async ValueTask DisposeAsync()
    {
        await A.DisposeAsync();
        await B.DisposeAsync();
        foreach (IAsyncDisposable extra in _extras)
        {
            await extra.DisposeAsync();
        }

        if (_directory is not null)
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}

/// <summary>
/// Every fd kind the behaviour suite runs over. Each makes a connected pair: A's Output reaches B's
/// Input and B's Output reaches A's Input.
/// </summary>
public static class FdKinds
{
    public const string FifoPair = "fifo";
    public const string AnonymousPipes = "pipe";
    public const string SocketPair = "socketpair";
    public const string Unix = "unix";
    public const string Tcp = "tcp";

    public static readonly string[] All = [FifoPair, AnonymousPipes, SocketPair, Unix, Tcp];

    /// <summary>The default group (<see cref="ReactorGroup.Default"/>, whatever it resolved to here).</summary>
    public const string DefaultReactors = "default reactors";

    /// <summary>A group that always hands the polling to the pool (<see cref="ReactorPolling.HandOffToThreadPool"/>).</summary>
    public const string HandOffReactors = "hand-off reactors";

    private static readonly Lazy<ReactorGroup> HandOffGroup = new(() => new ReactorGroup(2, true, ReactorPolling.HandOffToThreadPool));

    /// <summary>Every fd kind, on each kind of reactor group.</summary>
    public static IEnumerable<object[]> AllWithPolling =>
        All.SelectMany(kind => new[] { new object[] { kind, DefaultReactors }, new object[] { kind, HandOffReactors } });

    /// <summary>The group a fixture parameter names (null: the default group).</summary>
    public static ReactorGroup? Reactors(string name) => name switch
    {
        DefaultReactors => null,
        HandOffReactors => HandOffGroup.Value,
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };

    public static async Task<ConnectedPair> ConnectAsync(string kind, FdConnectionOptions? options, CancellationToken cancellationToken)
    {
        switch (kind)
        {
            case SocketPair:
            {
                var (a, b) = FdConnection.CreatePair(options);
                return new ConnectedPair(a, b);
            }

            case AnonymousPipes:
            {
                Check(Sys.Pipe(out int r1, out int w1));
                Check(Sys.Pipe(out int r2, out int w2));
                FdConnection a = FdConnection.FromFds(new SafeFdHandle(r1), new SafeFdHandle(w2), options);
                FdConnection b = FdConnection.FromFds(new SafeFdHandle(r2), new SafeFdHandle(w1), options);
                return new ConnectedPair(a, b);
            }

            case FifoPair:
            {
                string dir = Directory.CreateTempSubdirectory("pt-fifo-").FullName;
                string ab = Path.Combine(dir, "ab");
                string ba = Path.Combine(dir, "ba");
                Fifo.Create(ab);
                Fifo.Create(ba);
                Task<FdConnection> a = FdConnection.OpenFifoAsync(ba, ab, options, cancellationToken).AsTask();
                Task<FdConnection> b = FdConnection.OpenFifoAsync(ab, ba, options, cancellationToken).AsTask();
                return new ConnectedPair(await a, await b, dir);
            }

            case Unix:
            {
                string dir = Directory.CreateTempSubdirectory("pt-unix-").FullName;
                FdListener listener = FdListener.Bind(new UnixDomainSocketEndPoint(Path.Combine(dir, "s")), new FdListenerOptions { ConnectionOptions = options });
                return await ConnectThroughAsync(listener, options, dir, cancellationToken);
            }

            case Tcp:
            {
                FdListener listener = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), new FdListenerOptions { ConnectionOptions = options });
                return await ConnectThroughAsync(listener, options, null, cancellationToken);
            }

            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }
    }

    private static async Task<ConnectedPair> ConnectThroughAsync(FdListener listener, FdConnectionOptions? options, string? dir, CancellationToken cancellationToken)
    {
        Task<FdConnection> client = FdConnection.ConnectAsync(listener.LocalEndPoint, options, cancellationToken).AsTask();
        FdConnection? server = await listener.AcceptAsync(cancellationToken);
        return new ConnectedPair(await client, server!, dir, listener);
    }

    private static void Check(int result)
    {
        if (result < 0)
        {
            throw PipeTransportException.FromResult(result, "pipe2", null);
        }
    }
}
