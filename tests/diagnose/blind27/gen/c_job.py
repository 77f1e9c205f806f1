from lib import *

# 33 oom batch size forward
scen("b27-oom-forward-batch-doubled",
     "SFT job on H200 OOMs in the forward pass right after the user doubled per-device batch size from 8 to 16",
     """Label oom_batch_size: CUDA OOM in the forward pass (model.forward -> attention matmul) at step 0
after a batch-size change; GPU memory at 99%; no other process on the GPU. Format: PyTorch 2.x OOM
message, Slurm 25.05 sacct, W&B-style config diff.""",
     {"node": "h200-c-12",
      "job_log": ["config diff vs last good run: per_device_train_batch_size 8 -> 16, seq_len 4096 (unchanged)",
                  "Traceback (most recent call last):",
                  "  File \"/workspace/train.py\", line 212, in <module>",
                  "    outputs = model(**batch)",
                  "  File \"/opt/conda/lib/python3.11/site-packages/transformers/models/llama/modeling_llama.py\", line 566, in forward",
                  "    attn_weights = torch.matmul(query_states, key_states.transpose(2, 3))",
                  "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 8.00 GiB. GPU 0 has a total capacity of 139.81 GiB of which 1.37 GiB is free. Including non-PyTorch memory, this process has 138.42 GiB memory in use. Of the allocated memory 131.0 GiB is allocated by PyTorch, and 5.9 GiB is reserved by PyTorch but unallocated."],
      "metrics": [M("DCGM_FI_DEV_FB_USED", "h200-c-12", 0, 141520, "NVIDIA H200"), M("DCGM_FI_DEV_FB_FREE", "h200-c-12", 0, 1402, "NVIDIA H200")],
      "slurm": {"jobs": [{"job_id": 905501, "state": "FAILED", "exit_code": "1:0", "nodes": "h200-c-12"}]}},
     "oom_batch_size", "job", False)

# 34 oom activation backward long seq
scen("b27-oom-backward-seq32k",
     "long-context run on B200 (seq 32768) survives forward, dies in loss.backward() with CUDA OOM at step 1",
     """Label oom_activation: OOM raised inside backward (autograd engine run_backward) with a very long
sequence length and no activation checkpointing; forward completed. Format: PyTorch traceback,
torchrun logs.""",
     {"node": "b200-k2-05",
      "job_log": ["[rank0] seq_len=32768 micro_batch=1 activation_checkpointing=False",
                  "[rank0] step 0 forward ok, loss=11.92",
                  "[rank0]: Traceback (most recent call last):",
                  "[rank0]:   File \"/src/train_lc.py\", line 301, in train_step",
                  "[rank0]:     loss.backward()",
                  "[rank0]:   File \"/usr/local/lib/python3.12/site-packages/torch/autograd/graph.py\", line 825, in _engine_run_backward",
                  "[rank0]:     return Variable._execution_engine.run_backward(",
                  "[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 16.00 GiB. GPU 0 has a total capacity of 178.35 GiB of which 9.12 GiB is free. Of the allocated memory 160.77 GiB is allocated by PyTorch"]},
     "oom_activation", "job", False)

# 35 host oom dataloader, kernel oom-kill in cgroup
ev = [(55, "kernel", "pt_data_worker invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"),
      (55.01, "kernel", "Memory cgroup out of memory: Killed process 118420 (pt_data_worker) total-vm:38211044kB, anon-rss:30118872kB, file-rss:512kB, shmem-rss:0kB, UID:5144 pgtables:61212kB oom_score_adj:0"),
      (55.02, "kernel", "oom_reaper: reaped process 118420 (pt_data_worker), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB"),
      (55.5, "slurmstepd", "error: Detected 1 oom_kill event in StepId=880301.0. Some of the step tasks have been OOM Killed.")]
scen("b27-dataloader-48-workers-cgroup-oom",
     "ViT job with num_workers=48 per rank gets its data workers OOM-killed in the job cgroup; Slurm marks OUT_OF_MEMORY",
     """Label oom_host_dataloader: cgroup OOM killing pt_data_worker processes, slurmstepd oom_kill
event, sacct OUT_OF_MEMORY, many DataLoader workers each holding ~30 GB RSS. GPU memory is fine.
Format: Linux memcg OOM text, slurmstepd message, PyTorch DataLoader error.""",
     {"node": "h100-r08-n07",
      "kernel_log": timeline("h100-r08-n07", T("2026-12-02 10:00:00"), 2, 50, ev, seed=135),
      "job_log": ["DataLoader(num_workers=48, persistent_workers=True, prefetch_factor=8)",
                  "RuntimeError: DataLoader worker (pid(s) 118420) exited unexpectedly",
                  "slurmstepd: error: Detected 1 oom_kill event in StepId=880301.0. Some of the step tasks have been OOM Killed."],
      "slurm": {"jobs": [{"job_id": 880301, "state": "OUT_OF_MEMORY", "exit_code": "0:125", "nodes": "h100-r08-n07", "req_mem": "256G"}]},
      "metrics": [M("DCGM_FI_DEV_FB_USED", "h100-r08-n07", 0, 41200)]},
     "oom_host_dataloader", "job", False)

# 36 shm bus error k8s
scen("b27-k8s-shm-64m-bus-error",
     "pod training on L40S: DataLoader workers die with Bus error; /dev/shm is the container default 64M",
     """Label oom_shared_memory: 'DataLoader worker (pid N) is killed by signal: Bus error' and the pod
has no emptyDir Memory volume for /dev/shm (df shows 64M). Format: PyTorch error text, kubectl exec
df output, pod spec fragment. Kubernetes 1.31.""",
     {"node": "l40s-k8s-04",
      "job_log": ["ERROR: Unexpected bus error encountered in worker. This might be caused by insufficient shared memory (shm).",
                  "RuntimeError: DataLoader worker (pid 231) is killed by signal: Bus error. It is possible that dataloader's workers are out of shared memory. Please try to raise your shared memory limit.",
                  "$ kubectl exec -n cv train-seg-0 -- df -h /dev/shm\nFilesystem      Size  Used Avail Use% Mounted on\nshm              64M   64M     0 100% /dev/shm"],
      "events": ["Normal  Started  pod/train-seg-0  Started container trainer",
                 "Warning BackOff  pod/train-seg-0  Back-off restarting failed container trainer in pod train-seg-0_cv"]},
     "oom_shared_memory", "job", False)

# 37 nccl wrong interface
scen("b27-nccl-bootstrap-on-docker0",
     "2-node A100 job times out in the first all-reduce; NCCL bootstrapped on docker0 172.17.0.1 on both hosts",
     """Label nccl_wrong_interface: NCCL picked docker0 (same 172.17.0.1 on every host, not routable
between them) for bootstrap and socket transport; first collective times out right after init.
The class text names lo/127.0.0.1; docker0 is the same failure (wrong interface). Format: NCCL
INFO lines (NCCL 2.2x), torch watchdog text.""",
     {"node": "a100-n-021",
      "job_log": ["a100-n-021:9911:9911 [0] NCCL INFO Bootstrap : Using docker0:172.17.0.1<0>",
                  "a100-n-022:7120:7120 [0] NCCL INFO Bootstrap : Using docker0:172.17.0.1<0>",
                  "a100-n-021:9911:9911 [0] NCCL INFO NET/IB : No device found.",
                  "a100-n-021:9911:9911 [0] NCCL INFO NET/Socket : Using [0]docker0:172.17.0.1<0> [1]eno1:10.8.0.21<0>",
                  "a100-n-021:9911:9911 [0] NCCL INFO cudaDriverVersion 12080",
                  "a100-n-021:9911:9911 [0] NCCL INFO NCCL version 2.26.2+cuda12.8",
                  "[rank0]:[E ProcessGroupNCCL.cpp:616] [Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600318 milliseconds before timing out.",
                  "env: NCCL_SOCKET_IFNAME=<unset>  NCCL_IB_DISABLE=1"]},
     "nccl_wrong_interface", "job", False)

# 38 rank divergence
scen("b27-rank-divergence-seqnum-mismatch",
     "16-rank job hangs at step 4411: ranks 0-14 wait in ALLREDUCE SeqNum 88213, rank 15 is in a BROADCAST with SeqNum 88212",
     """Label nccl_rank_divergence: flight-recorder/watchdog output shows mismatched collective types and
sequence numbers across ranks (rank 15 took a different code path: it skipped an eval-only
all-reduce). No node faults. Format: PyTorch ProcessGroupNCCL watchdog and desync report text.""",
     {"job_log": ["[rank15]:[I1204 11:10:00] step 4411 is_eval_step=False, next: broadcast(sample_ids)",
                  "[rank0]:[I1204 11:10:00] step 4411 is_eval_step=True, eval: reducing metrics",
                  "[rank9]:[I1204 11:10:00] step 4411 is_eval_step=True, eval: reducing metrics",
                  "[rank3]:[E1204 11:40:02.551] [PG 0 Rank 3] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=88213, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=1800000) ran for 1800101 milliseconds before timing out.",
                  "[rank15]:[E1204 11:40:02.602] [PG 0 Rank 15] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=88212, OpType=BROADCAST, NumelIn=4096, NumelOut=4096, Timeout(ms)=1800000) ran for 1800088 milliseconds before timing out.",
                  "[rank0]:[E1204 11:40:03.000] Desync debugging report: rank 15 is running collective SeqNum 88212 (BROADCAST); ranks [0..14] are running SeqNum 88213 (ALLREDUCE)"],
      "metrics": [M("DCGM_FI_DEV_GPU_UTIL", "h100-r10-n01", g, 100) for g in (0, 7)],
      "slurm": {"jobs": [{"job_id": 899888, "state": "RUNNING", "nodes": "h100-r10-n[01-02]"}]}},
     "nccl_rank_divergence", "job", False, tags=["time"])

# 39 job hung: running, no progress, util 0
scen("b27-job-hung-util-zero-two-hours",
     "job RUNNING for 14 h, last log line 2 h ago, all 8 GPUs at 0% util and 22 GiB still allocated, py-spy shows a wait on a file lock",
     """Label job_hung: the job is RUNNING, no log/progress for >2 h, GPU utilisation near 0 on every
GPU, no Xid and no NCCL error; the stack shows the main thread waiting on a lock. Format: squeue,
nvidia-smi dmon, py-spy dump.""",
     {"node": "h100-r12-n06",
      "job_log": ["2026-12-06 01:58:44 step 51200 loss 1.622 saving checkpoint to /lustre/proj/ckpt/step51200 ...",
                  "(no further lines; now 2026-12-06 04:05)",
                  "$ py-spy dump --pid 40012\nThread 40012 (idle): \"MainThread\"\n    acquire (filelock/_api.py:332)\n    save_checkpoint (trainer/ckpt.py:77)"],
      "metrics": [M("DCGM_FI_DEV_GPU_UTIL", "h100-r12-n06", g, 0) for g in range(0, 8, 3)] +
                 [M("DCGM_FI_DEV_FB_USED", "h100-r12-n06", 0, 22530)],
      "slurm": {"node_state": ["ALLOCATED"], "jobs": [{"job_id": 906120, "state": "RUNNING", "nodes": "h100-r12-n06", "elapsed": "14:02:11"}]}},
     "job_hung", "job", False, tags=["time"])

# 40 credential expired upstream pipeline step
scen("b27-pipeline-expired-token-upstream",
     "nightly training fails with 'no shards found'; the upstream data-sync step earlier logged ExpiredToken from object storage",
     """Label credential_expired: the failing training job is a downstream symptom; the pipeline step it
depends on (sync-shards) hit ExpiredToken/403 and wrote nothing. Format: Argo-like workflow step
log, AWS CLI error text, training error.""",
     {"job_log": ["[workflow nightly-pt-1205] step sync-shards started 2026-12-05T00:10:02Z",
                  "download failed: s3://corp-train/shards/2026-12-04/part-00000.tar to /data/shards/part-00000.tar An error occurred (ExpiredToken) when calling the GetObject operation: The provided token has expired.",
                  "[workflow nightly-pt-1205] step sync-shards exited 0 (errors ignored: continueOn.failed=true)",
                  "[workflow nightly-pt-1205] step train started 2026-12-05T00:41:19Z",
                  "ValueError: no shards found matching /data/shards/part-*.tar",
                  "[workflow nightly-pt-1205] step train Failed (exit code 1)"],
      "history": [{"attempt": 1, "date": "2026-12-04", "error": "none"},
                  {"attempt": 2, "date": "2026-12-05", "error": "no shards found"}]},
     "credential_expired", "job", False, tags=["upstream", "time"])

# 41 pending no capacity
scen("b27-squeue-pending-resources-full",
     "job asking 8x H100 PENDING (Resources) for 3 h; sinfo shows all 48 H100 nodes ALLOCATED or MIXED with 0 free GPUs",
     """Label pending_no_capacity: reason Resources, request is valid (fits one node), every matching node
is busy. Format: squeue/sinfo/scontrol output with Slurm 24.11 gres strings.""",
     {"slurm": {"jobs": [{"job_id": 907001, "state": "PENDING", "reason": "Resources", "partition": "h100", "tres": "gres/gpu:h100=8", "nodes": "(Resources)"}]},
      "events": ["$ sinfo -p h100 -O nodehost:14,statecompact:8,gres:22,gresused:30 | sort | uniq -c | head\n  31 h100-r..  alloc  gpu:h100:8  gpu:h100:8(IDX:0-7)\n  17 h100-r..  mix    gpu:h100:8  gpu:h100:8(IDX:0-7)",
                 "$ squeue --start -j 907001\n JOBID PARTITION NAME USER ST START_TIME          NODES SCHEDNODES NODELIST(REASON)\n907001 h100      pt7b tlin PD 2026-12-07T19:40:00 1     h100-r02-n04 (Resources)"]},
     "pending_no_capacity", "cluster", False)

# 42 spot preemption AWS
scen("b27-spot-interruption-notice-k8s",
     "p5 spot node gets an EC2 interruption notice; Karpenter drains it, the training pod is terminated, not a GPU fault",
     """Label spot_preemption: EC2 Spot interruption warning followed by node termination and pod
eviction; job will resume from checkpoint. Format: EC2 instance-action metadata JSON, Karpenter
event wording, kubectl events.""",
     {"node": "ip-10-2-14-88.ec2.internal",
      "events": ["IMDS /latest/meta-data/spot/instance-action: {\"action\": \"terminate\", \"time\": \"2026-12-06T15:22:00Z\"}",
                 "Normal  Terminating  node/ip-10-2-14-88.ec2.internal  karpenter  Interruption: spot interruption warning",
                 "Warning Evicted  pod/llm-ft-worker-2  Node is being drained for spot interruption",
                 "Normal  NodeNotReady node/ip-10-2-14-88.ec2.internal status is now: NodeNotReady (instance shutting down)"],
      "job_log": ["[worker-2] received SIGTERM at step 12080, saving emergency checkpoint... done"]},
     "spot_preemption", "job", False)

# 43 taint
scen("b27-pod-untolerated-gpu-taint",
     "inference pod Pending 40 min on a 1.33 cluster: every GPU node carries nvidia.com/gpu=present:NoSchedule and the pod has no toleration",
     """Label taint_toleration_mismatch: scheduler event 'had untolerated taint {nvidia.com/gpu: present}'
on all GPU nodes; the pod spec has no tolerations. Format: kubectl describe pod Events.""",
     {"events": ["Warning  FailedScheduling  3m (x14 over 40m)  default-scheduler  0/26 nodes are available: 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 24 node(s) had untolerated taint {nvidia.com/gpu: present}. preemption: 0/26 nodes are available: 26 Preemption is not helpful for scheduling.",
                 "Tolerations:  node.kubernetes.io/not-ready:NoExecute op=Exists for 300s\n              node.kubernetes.io/unreachable:NoExecute op=Exists for 300s",
                 "Limits: nvidia.com/gpu: 1"]},
     "taint_toleration_mismatch", "job", False)

# 44 image pull
scen("b27-imagepull-manifest-unknown-tag",
     "RayJob submitter pod stuck ErrImagePull: tag 2.49.1-py311-cu128 does not exist in the registry (manifest unknown)",
     """Label image_pull_error: ErrImagePull / ImagePullBackOff with 'manifest unknown' (tag typo) from
containerd. Format: kubelet/containerd event text.""",
     {"events": ["Normal   Pulling    2m (x4 over 4m)  kubelet  Pulling image \"registry.internal/ml/ray:2.49.1-py311-cu128\"",
                 "Warning  Failed     2m (x4 over 4m)  kubelet  Failed to pull image \"registry.internal/ml/ray:2.49.1-py311-cu128\": rpc error: code = NotFound desc = failed to pull and unpack image \"registry.internal/ml/ray:2.49.1-py311-cu128\": failed to resolve reference: registry.internal/ml/ray:2.49.1-py311-cu128: not found",
                 "Warning  Failed     2m (x4 over 4m)  kubelet  Error: ErrImagePull",
                 "Normal   BackOff    1m (x6 over 4m)  kubelet  Back-off pulling image \"registry.internal/ml/ray:2.49.1-py311-cu128\"",
                 "Warning  Failed     1m (x6 over 4m)  kubelet  Error: ImagePullBackOff",
                 "$ crane ls registry.internal/ml/ray | grep 2.49\n2.49.1-py311-cu126\n2.49.2-py311-cu128"]},
     "image_pull_error", "job", False)

# 45 ray worker oom
scen("b27-ray-memory-monitor-kills-worker",
     "Ray batch embedding job: memory monitor kills workers on a 256 GB node at 95% usage; tasks retried then fail",
     """Label ray_worker_oom: Ray's memory monitor message 'Task was killed due to the node running low
on memory' with the usage threshold; the node itself is fine. Format: Ray 2.4x OutOfMemoryError text.""",
     {"job_log": ["(raylet) [2026-12-02 13:22:10,114 E 2210 2210] (raylet) node_manager.cc:3069: 1 Workers (tasks / actors) killed due to memory pressure (OOM), 0 Workers crashed due to other reasons at node (ID: 4a7f0e9c, IP: 10.40.1.12) over the last time period.",
                  "ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on memory.",
                  "Memory on the node (IP: 10.40.1.12, ID: 4a7f0e9c) where the task (task ID: ffffffff, name=embed_batch, pid=88211, memory used=31.20GB) was running was 243.51GB / 256.00GB (0.951211), which exceeds the memory usage threshold of 0.95. Ray killed this worker (ID: 0c1e) because it was the most recently scheduled task.",
                  "Refer to the documentation on how to address the out of memory issue: https://docs.ray.io/en/latest/ray-core/scheduling/ray-oom-prevention.html. Consider provisioning more memory on this node or reducing task parallelism by requesting more CPUs per task. Set max_restarts and max_task_retries to enable retry when the task crashes due to OOM. To adjust the kill threshold, set the environment variable `RAY_memory_usage_threshold` when starting Ray."]},
     "ray_worker_oom", "job", False)

# 46 ray serve replica oom
scen("b27-ray-serve-70b-replica-wont-start",
     "Serve app with a 70B model on one L40S per replica: replicas die during weight load with CUDA OOM, deployment stuck DEPLOY_FAILED",
     """Label ray_serve_replica_oom: replica actor fails in __init__ while loading weights (CUDA OOM on a
48 GB GPU), controller keeps retrying. Format: Ray Serve controller/replica log text, serve status.""",
     {"job_log": ["(ServeController pid=511) WARNING controller 511 deployment_state.py:2213 - Deployment 'LLMDeployment' in application 'chat' has 2 replicas that have taken more than 30s to initialize.",
                  "(ServeReplica:chat:LLMDeployment pid=930) torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.75 GiB. GPU 0 has a total capacity of 44.53 GiB of which 1.02 GiB is free.",
                  "(ServeReplica:chat:LLMDeployment pid=930)   File \"/app/serve_llm.py\", line 31, in __init__",
                  "(ServeController pid=511) ERROR controller 511 deployment_state.py:1902 - Exception in replica 'chat#LLMDeployment#k2x9', the replica will be stopped.",
                  "$ serve status\napplications:\n  chat:\n    status: DEPLOY_FAILED\n    message: 'Deploying app failed: replica failed to start: ActorDiedError ... CUDA out of memory'",
                  "ray_actor_options: {num_gpus: 1}  model: llama-70b-instruct fp16 (~140 GB)"]},
     "ray_serve_replica_oom", "job", False)

# 47 ray cluster not ready: nodeSelector wrong level
scen("b27-raycluster-nodeselector-wrong-level",
     "RayCluster stays 'pending' 50 min: nodeSelector placed under workerGroupSpecs (ignored) while pods land on CPU nodes without GPUs",
     """Label ray_cluster_not_ready: KubeRay worker pods Pending with 'Insufficient nvidia.com/gpu' on
nodes chosen without the intended selector; the nodeSelector sits at the group level instead of
template.spec. Manifest error, not capacity (GPU pool has 6 free nodes). Format: kubectl get
raycluster, pod events, manifest excerpt.""",
     {"events": ["$ kubectl get raycluster rc-train -o wide\nNAME       DESIRED WORKERS   AVAILABLE WORKERS   STATUS    AGE\nrc-train   4                 0                   pending   50m",
                 "workerGroupSpecs:\n- groupName: gpu\n  replicas: 4\n  nodeSelector:            # <- at group level, not under template.spec\n    pool: h100\n  template:\n    spec:\n      containers:\n      - name: ray-worker\n        resources: {limits: {nvidia.com/gpu: 8}}",
                 "Warning  FailedScheduling  pod/rc-train-gpu-worker-7x2pd  0/40 nodes are available: 6 node(s) didn't match Pod's node affinity/selector, 34 Insufficient nvidia.com/gpu.",
                 "KubeRay operator: W1205 error: strict decoding error: unknown field \"spec.workerGroupSpecs[0].nodeSelector\""]},
     "ray_cluster_not_ready", "job", False)

# 48 ray gcs failure: head OOM upstream, workers disconnect
scen("b27-ray-head-oom-gcs-gone",
     "all 32 Ray workers log 'Failed to connect to GCS' at 03:11; head pod's container was OOMKilled at 03:10",
     """Label ray_gcs_failure: the head pod OOMKilled (upstream) takes GCS down; every worker then fails
its GCS health check (downstream). No GCS fault tolerance configured. Format: kubectl describe pod
lastState, Ray raylet log text.""",
     {"events": ["pod ray/rc-etl-head-q8z2c: Last State: Terminated  Reason: OOMKilled  Exit Code: 137  Finished: Sun, 06 Dec 2026 03:10:52 +0000  Limits: memory 16Gi",
                 "pod ray/rc-etl-head-q8z2c: Restart Count: 1"],
      "job_log": ["[2026-12-06 03:11:22,802 E 77 77] gcs_rpc_client.h:179: Failed to connect to GCS at address 10.42.0.17:6379 within 5 seconds.",
                  "[2026-12-06 03:11:52,900 E 77 77] raylet_client: The raylet exited immediately because the GCS could not be reached; GCS health check failed, killing the raylet.",
                  "(x32 worker pods, same lines within 40 s)",
                  "job etl-embed-1206 FAILED: ray.exceptions.RaySystemError: System error: GCS is unavailable"]},
     "ray_gcs_failure", "job", False, tags=["upstream", "time"])

# 49 ray data backpressure
scen("b27-ray-data-gpu-idle-object-store-spill",
     "Ray Data batch inference: 8 GPUs at 0-5% for 40 min while the object store is 100% full and spilling 600 GB",
     """Label ray_data_backpressure: GPUs starve while Ray Data's read/preprocess stage floods the object
store (spilling), no errors raised. Format: Ray Data progress line, 'ray memory --stats-only',
DCGM utilization.""",
     {"job_log": ["Running Dataset: ReadParquet->Map(preprocess) 2301/9800 [39:12<2:07:11] | MapBatches(Predictor): 8 actors, 41/9800",
                  "(raylet) Spilled 612342 MiB, 51234 objects, write throughput 410 MiB/s.",
                  "$ ray memory --stats-only\nObject store memory usage: 200.0 GB / 200.0 GB (100%)  Spilled: 612342 MiB",
                  "WARNING streaming_executor.py: Operator ReadParquet->Map(preprocess) is producing outputs faster than downstream can consume; object store usage over limit"],
      "metrics": [M("DCGM_FI_DEV_GPU_UTIL", "a100-ray-03", g, v, "NVIDIA A100-SXM4-80GB") for g, v in [(0, 3), (1, 0), (5, 5)]]},
     "ray_data_backpressure", "job", False)

# 50 queue saturation
scen("b27-qos-limit-peaks-three-weeks",
     "team-nlp jobs pend on QOSMaxGRESPerUser / AssocGrpGRES every weekday 10:00-18:00 for three weeks; fine at night",
     """Label queue_saturation: recurring pending on QOS/association GRES limits at peak hours, not a
node or job fault. Format: sreport-like table, squeue reasons (Slurm 25.05).""",
     {"slurm": {"jobs": [{"job_id": 907300 + i, "state": "PENDING", "reason": r, "account": "team-nlp"} for i, r in enumerate(["QOSMaxGRESPerUser", "AssocGrpGRES", "AssocGrpGRES", "QOSMaxGRESPerUser"])]},
      "events": ["week,weekday_peak_pending_h(avg),night_pending_h(avg),grp_gres_limit,peak_used",
                 "2026-W46,3.8,0.2,gpu=128,128", "2026-W47,4.1,0.1,gpu=128,128", "2026-W48,4.6,0.3,gpu=128,128",
                 "ticket from team-nlp lead: 'we hit the wall every day after lunch, can we get more?'"]},
     "queue_saturation", "cluster", False, tags=["human"])

# 51 idle allocation
scen("b27-reserved-gpus-idle-five-days",
     "project 'vision-x' holds 32 H100 in interactive allocations idle for 5 days while 41 jobs from other teams wait",
     """Label idle_allocation: allocated GPUs at ~0% utilisation for days, jobs from other accounts
pending on Resources. Format: sacct/squeue with elapsed, DCGM utilization averages, chat message.""",
     {"slurm": {"jobs": [{"job_id": 890100 + i, "state": "RUNNING", "account": "vision-x", "elapsed": "5-0%d:11:00" % i, "nodes": f"h100-r14-n0{i}", "name": "interactive"} for i in range(4)]},
      "metrics": [M("DCGM_FI_DEV_GPU_UTIL", f"h100-r14-n0{i}", 0, 0) for i in range(4)],
      "events": ["avg_over_time(DCGM_FI_DEV_GPU_UTIL{Hostname=~\"h100-r14-n0[0-3]\"}[5d]) = 0.4",
                 "squeue -p h100 -t PD | wc -l -> 41 (reason Resources/Priority)",
                 "#gpu-users chat 2026-12-06 10:02 <dmitri> anyone knows who sits on r14? we wait since tuesday"]},
     "idle_allocation", "cluster", False, tags=["human"])
