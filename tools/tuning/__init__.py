"""Domain instruction tuning: build instruction data from marketplace listings (`sft_data`, with the
cleaning rules of `cleaning`, the instruction builders of `instructions` and the catalog checks of
`catalog`), and fine-tune a Qwen2-VL class listing writer on it (`tune`, with the label mask of
`collator`). The training libraries (trl, peft) are the optional extra `ipl[tune]`."""
