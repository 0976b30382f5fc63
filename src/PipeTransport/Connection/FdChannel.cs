using System.Runtime.InteropServices;
using PipeTransport.Interop;
using PipeTransport.Reactor;

namespace PipeTransport.Connection;

/// <summary>
/// One adopted fd: a reference held on its <see cref="SafeHandle"/> for as long as we use the raw
/// number, its kind, and its reactor registration. This is the one place that decides whether an fd
/// is pollable (Go's <c>os.newFile</c> makes the same decision): epoll refuses regular files and some
/// devices with <c>EPERM</c>, and those fall back to plain blocking calls.
/// </summary>
internal sealed class FdChannel : Registration
{
    private readonly bool _disposeHandle;
    private bool _drainedByShortRead;
    private bool _restoreBlocking;
    private bool _registered;
    private string? _name;
    private int _closed;
    private int _grownPipeBytes;

    private FdChannel(SafeHandle handle, int fd, FdKind kind, bool disposeHandle, string? name)
        : base(fd)
    {
        Handle = handle;
        Kind = kind;
        _disposeHandle = disposeHandle;
        _name = name;
    }

    public SafeHandle Handle { get; }

    public FdKind Kind { get; }

    /// <summary>Whether this is the read end of a pipe or FIFO (opened read-only), whose Input may read on demand; asks the kernel.</summary>
    public bool IsPipeReadEnd() =>
        Kind == FdKind.Pipe && WithFd(this, null, static (_, fd, _) => Sys.Fcntl(fd, Libc.F_GETFL, 0)) is int flags and >= 0
        && (flags & Libc.O_ACCMODE) == Libc.O_RDONLY;

    /// <summary>Null for a non-pollable fd (blocking fallback).</summary>
    public Registration? Registration => _registered ? this : null;

    public bool Pollable => _registered;

    /// <summary>
    /// A read that returns less than asked for means nothing more is buffered and every later byte
    /// brings its own readiness edge (a stream socket: each segment queued wakes epoll), so after it
    /// the next edge can be awaited without asking the fd again. Not a tty (reads stop at a line), a
    /// datagram socket, or a pipe: a pipe write wakes the reader once while it may still be copying
    /// in, so a reader that waited after a short read lost a writer cycle each time (FIFO read fell
    /// from 2.4 to 1.3 GiB/s); pipes ask FIONREAD instead.
    /// </summary>
    public bool DrainedByShortRead => _drainedByShortRead;

    /// <summary>How errors name this fd: a path, an endpoint or <c>fd N</c>.</summary>
    public string Name => _name ??= $"fd {Fd}";

    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>Grows a pipe's kernel buffer towards <paramref name="capacity"/> (<see cref="PipeCapacity.Grow"/>); given back at close.</summary>
    public void GrowPipe(int capacity)
    {
        if (Kind == FdKind.Pipe && capacity > 0 && _grownPipeBytes == 0)
        {
            _grownPipeBytes = WithFd(capacity, static (c, fd) => PipeCapacity.Grow(fd, c));
        }
    }

    /// <summary>Registers an fd this library just created non-blocking and <c>O_CLOEXEC</c> (a socket, an accepted connection).</summary>
    public static FdChannel AdoptNew(SafeFdHandle handle, FdKind kind, EpollReactor reactor, string? name = null)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        // Only stream sockets are made here (listen, accept, connect).
        var channel = new FdChannel(handle, handle.Fd, kind, disposeHandle: true, name) { _drainedByShortRead = kind == FdKind.Socket };
        if (!reactor.TryRegister(channel, out int error))
        {
            handle.DangerousRelease();
            handle.Dispose();
            throw PipeTransportException.FromResult(error, "epoll_ctl(ADD)", name ?? $"fd {handle.Fd}");
        }

        channel._registered = true;
        return channel;
    }

    /// <summary>
    /// Takes a reference on <paramref name="handle"/>, makes the fd non-blocking and registers it.
    /// </summary>
    /// <param name="handle">The fd.</param>
    /// <param name="reactor">Where to register it (both fds of a pair go to one reactor).</param>
    /// <param name="disposeHandle">Whether closing the channel disposes the handle (adoption) or only releases our reference (RawFd).</param>
    /// <param name="name">How errors name it; defaults to <c>fd N</c>.</param>
    public static FdChannel Adopt(SafeHandle handle, EpollReactor reactor, bool disposeHandle, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(handle);
        ObjectDisposedException.ThrowIf(handle.IsClosed, handle);
        if (handle.IsInvalid)
        {
            throw new ArgumentException("The handle does not hold a valid fd.", nameof(handle));
        }

        bool added = false;
        handle.DangerousAddRef(ref added);
        int fd = (int)handle.DangerousGetHandle().ToInt64();
        try
        {
            if (Sys.CheckOpen(fd) < 0)
            {
                throw new ArgumentException($"{name ?? $"fd {fd}"} is not an open file descriptor (EBADF).", nameof(handle));
            }

            FdKind kind = KindOf(fd);
            if (kind == FdKind.Directory)
            {
                throw new ArgumentException($"{name ?? $"fd {fd}"} is a directory (EISDIR).", nameof(handle));
            }

            int wasNonBlocking = Sys.SetNonBlocking(fd, true);
            if (wasNonBlocking < 0)
            {
                throw PipeTransportException.FromResult(wasNonBlocking, "fcntl(O_NONBLOCK)", name ?? $"fd {fd}");
            }

            var channel = new FdChannel(handle, fd, kind, disposeHandle, name)
            {
                _drainedByShortRead = kind == FdKind.Socket && Sys.GetSockOptInt(fd, Libc.SOL_SOCKET, Libc.SO_TYPE, out int type) == 0 && type == Libc.SOCK_STREAM,
            };
            if (!reactor.TryRegister(channel, out int error))
            {
                if (error != -Libc.EPERM)
                {
                    throw PipeTransportException.FromResult(error, "epoll_ctl(ADD)", name ?? $"fd {fd}");
                }

                // Not pollable: blocking calls on it are short (page cache, device), so use them as they are.
                Sys.SetNonBlocking(fd, wasNonBlocking == 1);
                return channel;
            }

            channel._registered = true;
            channel._restoreBlocking = wasNonBlocking == 0;
            return channel;
        }
        catch
        {
            handle.DangerousRelease();
            throw;
        }
    }

    /// <summary>
    /// Unregisters, restores the blocking flag we changed (the open file description may be shared,
    /// e.g. an inherited stdin), releases our reference and, for adopted fds, closes it. Idempotent.
    /// </summary>
    public void Close(Exception? reason = null)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        Registration?.RemoveFromReactor(reason);
        if (_restoreBlocking)
        {
            Sys.SetNonBlocking(Fd, false);
        }

        Handle.DangerousRelease();
        if (_disposeHandle)
        {
            Handle.Dispose();
        }

        PipeCapacity.Release(Math.Max(_grownPipeBytes, 0));
    }

    /// <summary>
    /// Removes the fd from epoll and wakes waiters with <paramref name="reason"/>, without closing it.
    /// Safe against a concurrent <see cref="Close"/>: it holds a reference, so the number cannot be
    /// closed (and reused) under the <c>epoll_ctl</c>.
    /// </summary>
    public void Unregister(Exception? reason)
    {
        if (Registration is { } registration)
        {
            WithFd(registration, reason, static (r, _, why) => { r.RemoveFromReactor(why); return 0; });
        }
    }

    /// <summary><c>shutdown(2)</c> on a socket, if the fd is still open: 0, or the negated errno (<c>-EBADF</c> once closed).</summary>
    public int Shutdown(int how) => Kind == FdKind.Socket ? WithFd(how, null, static (h, fd, _) => Sys.Shutdown(fd, h)) : 0;

    /// <summary>Runs <paramref name="action"/> with the fd held open; returns <c>-EBADF</c> once the channel is closed.</summary>
    public int WithFd<T>(T state, Func<T, int, int> action) => WithFd(state, null, (s, fd, _) => action(s, fd));

    private int WithFd<T>(T state, Exception? reason, Func<T, int, Exception?, int> action)
    {
        bool added = false;
        try
        {
            Handle.DangerousAddRef(ref added);
            return IsClosed ? -Libc.EBADF : action(state, Fd, reason);
        }
        catch (ObjectDisposedException)
        {
            return -Libc.EBADF;
        }
        finally
        {
            if (added)
            {
                Handle.DangerousRelease();
            }
        }
    }

    /// <inheritdoc/>
    protected override void Rearm() => WithFd(this, null, static (channel, fd, _) =>
    {
        channel.Reactor?.Rearm(channel, fd);
        return 0;
    });

    private static FdKind KindOf(int fd)
    {
        if (Sys.Stat(fd, out uint type, out _) != 0)
        {
            return FdKind.Other;
        }

        return type switch
        {
            Libc.S_IFIFO => FdKind.Pipe,
            Libc.S_IFSOCK => FdKind.Socket,
            Libc.S_IFCHR => FdKind.CharacterDevice,
            Libc.S_IFREG => FdKind.RegularFile,
            Libc.S_IFDIR => FdKind.Directory,
            _ => FdKind.Other,
        };
    }
}
