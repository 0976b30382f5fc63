namespace PipeTransport.Perf.Soak;

/// <summary>
/// One cycle's checkpoint, taken at the same phase of every cycle: the end of its normal phase, under
/// the same loads, before the fd-limit period. RSS, fds and threads are medians of the last samples
/// (<see cref="SoakSettings.CheckpointWindow"/>); the heap and the fd split come from the server itself.
/// </summary>
internal sealed record SoakCheckpoint(int Cycle, double Seconds, long Rss, int Fds, int Threads, long LiveHeap, int Connections, int UnownedFds, long PoolCached);
