"""RetroLLM training (docs/method.md §8): targets, loss masks, LoRA, the loop.

One job per module; importing this package loads nothing heavy:

    evidence    candidate sentences as corpus token spans; the gold-answer relevance test
    clues       target clues: corpus spans of the question and evidence ranked by eq. 5
    targets     the output-format sequence with roles; the reachability assertion
    masks       roles -> loss weights (masked evidence middles, gamma on the answer)
    trainset    one TrainExample per question (the build_trainset stage's engine)
    data        dataset with a seeded per-epoch order; padding collator
    lora        peft LoRA config with the five special-token rows trainable
    loop        Accelerate training loop with the fixed-denominator weighted loss
    checkpoint  save and exact resume (parameters, optimizer, scheduler, RNG, step)
    adapter     adapter folder, base-model fingerprint, load_adapter (refuses a mismatch)
    show        `python -m retrollm.training.show`: examples with masked tokens marked
"""
